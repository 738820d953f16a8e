#!/usr/bin/env bash
# Installs (or reuses) .venv and runs the test suite. Slow tests are skipped unless
# XMCGAN_SLOW=1 (or pass pytest arguments, e.g. `bash scripts/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
elif [ "${XMCGAN_SLOW:-0}" = "1" ]; then
  exec .venv/bin/python -m pytest -n 2 --dist loadfile tests
else
  exec .venv/bin/python -m pytest -n 2 --dist loadfile -m "not slow" tests
fi
