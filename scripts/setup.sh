#!/usr/bin/env bash
# Create .venv with everything the project needs (ROS 2 Kilted from PyPI wheels, MuJoCo,
# PyTorch CPU, dynamixel-sdk, test tools). Idempotent: skips work when setup.py is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.setup-stamp"
want=$(cat setup.py scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# torch==2.13.0 comes from the local CPU wheel (a looser spec would pull GBs of CUDA).
pip_install() {  # this machine's pip config names index folders that may not exist: drop that noise
  "$VENV/bin/pip" install --quiet "$@" 2> >(grep -v -e 'is ignored: it is neither' -e '^  ' >&2)
}
pip_install --upgrade 'pip>=24' 'setuptools>=70,<80' wheel
pip_install torch==2.13.0
pip_install -e '.[all]'
echo "$want" > "$stamp"
echo "setup: $VENV ready ($("$VENV/bin/python" --version))"
