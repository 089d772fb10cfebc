#!/usr/bin/env bash
# Stop the Redmine that scripts/redmine-up.sh started (puma, by its pid file). The packages and the
# database stay, so the next redmine-up.sh only restarts puma. Idempotent.
set -euo pipefail
STATE=${PEERS_HOME:-${TMPDIR:-/tmp}/reconciler-peers}/redmine
PIDF=$STATE/puma.pid
if [ ! -f "$PIDF" ]; then
  echo "Redmine is not running (no $PIDF)" >&2
  exit 0
fi
PID=$(cat "$PIDF")
if kill -0 "$PID" 2>/dev/null; then
  kill "$PID"
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then
    echo "puma ($PID) did not stop in 10 s; sending KILL" >&2
    kill -9 "$PID" 2>/dev/null || true
  fi
  echo "stopped Redmine (puma pid $PID)" >&2
else
  echo "Redmine was not running (stale pid $PID)" >&2
fi
rm -f "$PIDF"
