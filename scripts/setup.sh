#!/usr/bin/env bash
# Create a virtual environment for the project. Idempotent: skips work when setup.py and this
# script are unchanged.
#
#   scripts/setup.sh                  .venv        ROS 2 Kilted wheels (Fast DDS 3), MuJoCo +
#                                                  gym-aloha, PyTorch (CPU), ONNX + ONNX
#                                                  Runtime ([onnx]), dynamixel-sdk, tools
#   scripts/setup.sh --distro jazzy   .venv-jazzy  the same with ROS 2 Jazzy wheels (rclpy 7.1,
#                                                  Fast DDS 2.14: Humble/Jazzy's DDS generation)
#   scripts/setup.sh --python 3.10    .venv310     Python 3.10 (Humble's), no ROS: the non-ROS
#                                                  extras [sim,data,hw] + pytest; [model] is
#                                                  resolved (pip --dry-run) but not installed
#                                                  (torch for cp310 is the ~3 GB CUDA build)
# VENV and PYTHON override the folder and the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
distro=kilted
python_version=''
while [ $# -gt 0 ]; do
  case "$1" in
    --distro) distro=${2:?--distro needs kilted or jazzy}; shift 2 ;;
    --python) python_version=${2:?--python needs a version, e.g. 3.10}; shift 2 ;;
    *) echo "usage: scripts/setup.sh [--distro kilted|jazzy] [--python 3.10]" >&2; exit 2 ;;
  esac
done

find_python() {  # python<version>: on PATH, else a pyenv install (CI machines have pyenv)
  local version=$1 candidate
  for candidate in "python$version" \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version"; do
    if "$candidate" -c 'pass' >/dev/null 2>&1; then
      command -v "$candidate" || echo "$candidate"
      return 0
    fi
  done
  echo "setup: no python$version found (on PATH or under ${PYENV_ROOT:-$HOME/.pyenv}/versions)" >&2
  return 1
}

case "$distro/$python_version" in
  kilted/) default_venv=.venv; mode=kilted ;;
  jazzy/) default_venv=.venv-jazzy; mode=jazzy ;;
  kilted/3.10) default_venv=.venv310; mode=py310 ;;
  *) echo "setup: unsupported combination --distro $distro --python $python_version (the ROS" \
          "wheels are cp311; Python 3.10 is checked without ROS)" >&2; exit 2 ;;
esac
VENV=${VENV:-$default_venv}
if [ "$mode" = py310 ]; then
  PYTHON=${PYTHON:-$(find_python 3.10)}
else
  PYTHON=${PYTHON:-python3}
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup: the ROS 2 wheels from PyPI are built for Python 3.11; $PYTHON is" \
         "$("$PYTHON" --version 2>&1) (set PYTHON=python3.11)" >&2
    exit 2
  fi
fi

stamp="$VENV/.setup-stamp"
want=$( (echo "$mode"; cat setup.py scripts/setup.sh) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
pip_install() {  # this machine's pip config names index folders that may not exist: drop that noise
  "$VENV/bin/pip" install --quiet "$@" 2> >(grep -v -e 'is ignored: it is neither' -e '^  ' >&2)
}
pip_install --upgrade 'pip>=24' 'setuptools>=70,<80' wheel
case "$mode" in
  kilted)
    # torch==2.13.0 comes from the local CPU wheel (a looser spec would pull GBs of CUDA).
    pip_install torch==2.13.0
    pip_install -e '.[all]'
    # tests/test_serving*.py talk to the server with other stacks' clients: the serve-test
    # extra (pins in setup.py, read back from the installed metadata). openpi-client goes in
    # with --no-deps: it declares numpy<2, which its client code does not need; its other needs
    # (websockets, msgpack: [serve]; dm-tree: dm-control; pillow: matplotlib) come with [all].
    mapfile -t serve_test < <("$VENV/bin/python" -c '
import importlib.metadata as metadata
for req in metadata.requires("cosmos-policy-ros") or []:
    spec, _, marker = req.partition(";")
    if "serve-test" in marker:
        print(spec.strip())')
    no_deps=() with_deps=()
    for req in "${serve_test[@]}"; do
      case "$req" in
        openpi-client*) no_deps+=("$req") ;;
        *) with_deps+=("$req") ;;
      esac
    done
    if [ ${#no_deps[@]} -ne 1 ] || [ ${#with_deps[@]} -eq 0 ]; then
      echo "setup: setup.py's serve-test extra was not found in the installed metadata" \
           "(${serve_test[*]:-none})" >&2
      exit 1
    fi
    pip_install --no-deps "${no_deps[@]}"
    pip_install "${with_deps[@]}"
    ;;
  jazzy)
    pip_install torch==2.13.0
    pip_install -e '.[ros-jazzy,model,sim,data,hw,dev]'
    ;;
  py310)
    pip_install -e '.[sim,data,hw]' pytest==9.2.0 pytest-timeout==2.4.0
    # Every [model] pin must exist for Python 3.10 too: resolve them without downloading torch.
    "$VENV/bin/pip" install --quiet --dry-run --ignore-installed -e '.[model,sim,data,hw]' \
      2> >(grep -v -e 'is ignored: it is neither' -e '^  ' >&2) >/dev/null
    ;;
esac
echo "$want" > "$stamp"
echo "setup: $VENV ready ($("$VENV/bin/python" --version); $mode)"
