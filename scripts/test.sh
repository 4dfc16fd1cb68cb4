#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q -ra "$@" tests
