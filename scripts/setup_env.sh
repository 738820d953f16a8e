#!/usr/bin/env bash
# Creates (or reuses) the virtual environment .venv with the pinned requirements and the
# package installed in it (editable), with its xmcgan-* commands.
# Usage: bash scripts/setup_env.sh   (prints the python path on the last line)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${XMCGAN_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
  # The package itself, editable: the xmcgan-* commands, imports from any directory.
  PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
else
  echo "[setup] $VENV is up to date"
fi
