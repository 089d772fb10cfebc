#!/usr/bin/env bash
# Install reconciler with its test dependencies into the project's venv (.venv, made
# here when missing), install Canaille into its own venv (.canaille-venv), start the real
# servers the tests need (Redmine on 127.0.0.1; scim2-server and Canaille are started by
# the pytest fixtures), and run the whole test suite.
# Extra arguments go to pytest.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k scim    # a subset
# PYTHON=/path/to/python uses that interpreter (and its environment) instead of .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  if [ ! -x .venv/bin/python ]; then
    echo "== creating the venv .venv" >&2
    python3 -m venv .venv
  fi
  PY=.venv/bin/python
fi

echo "== installing reconciler[test] into $("$PY" -c 'import sys; print(sys.prefix)')" >&2
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | { grep -v '^WARNING: Location' >&2 || true; }
"$PY" -c "import reconciler, scim2_server, respx, openapi_core" >/dev/null

if [ -z "${CANAILLE_PYTHON:-}" ] && [ "${RECONCILER_SKIP_CANAILLE:-}" != "1" ]; then
  echo "== installing Canaille into .canaille-venv (a real OAuth 2.0 + SCIM server for the tests)" >&2
  CANAILLE_PYTHON=$(bash scripts/canaille-venv.sh)  # a failure here fails the run (set -e)
  export CANAILLE_PYTHON
fi

if [ -f scripts/redmine-up.sh ] && [ -z "${REDMINE_URL:-}" ]; then
  echo "== starting Redmine on 127.0.0.1 (installs it on first use; needs root)" >&2
  env_lines=$(bash scripts/redmine-up.sh)  # a failure here fails the run (set -e)
  eval "$env_lines"
  if [ -z "${REDMINE_URL:-}" ]; then
    echo "scripts/redmine-up.sh printed no REDMINE_URL" >&2
    exit 1
  fi
  export REDMINE_URL REDMINE_API_KEY
fi

echo "== running the tests" >&2
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
