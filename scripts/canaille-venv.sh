#!/usr/bin/env bash
# Make .canaille-venv (when missing) with the pinned Canaille the tests run as a real OAuth 2.0 +
# SCIM 2.0 server (tests/canaille/). It needs a venv of its own: Canaille 0.3.6 needs
# scim2-models 0.9.0, which clashes with reconciler's pin. Idempotent; prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.canaille-venv
req=tests/canaille/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== making $venv (Canaille, pinned in $req)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" 2>&1 \
    | { grep -v '^WARNING: Location' >&2 || true; }
  "$venv/bin/python" -c "import canaille, scim2_models" >/dev/null
  echo "$want" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
