#!/usr/bin/env bash
# Build the test workspace's interface packages (tests/ros2_ws/src: interbotix_xs_msgs, the
# stand-in for Interbotix's) with colcon, CMake and the rosidl generators from PyPI, against the
# ROS 2 wheels of one venv. Output goes to <venv>/test_interfaces/{build,install,log}; the
# install prefix is printed last. Skipped when nothing changed.
#   scripts/build_test_interfaces.sh [VENV]        (default .venv-jazzy)
# Then: source <prefix>/local_setup.bash (scripts/test.sh does this for the Jazzy stage).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-jazzy}
VENV=$(cd "$VENV" && pwd)
out="$VENV/test_interfaces"
src=tests/ros2_ws/src
stamp="$out/.build-stamp"
want=$( (find "$src" -type f | sort | xargs cat; cat "$0") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$out/install/local_setup.bash" ]; then
  echo "$out/install"
  exit 0
fi
for tool in cmake make c++; do
  command -v "$tool" >/dev/null || { echo "build_test_interfaces: $tool is needed" \
    "(apt-get install cmake build-essential)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
# The wheels install their CMake configs under the venv prefix; the generators run with the
# venv's Python (rosidl_adapter & co. live there), which also gives the headers and numpy.
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$VENV/bin:$PATH"
if ! "$VENV/bin/colcon" --log-base "$out/log" build --base-paths "$src" \
    --build-base "$out/build" --install-base "$out/install" \
    --event-handlers console_cohesion- summary- status- \
    --cmake-args -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS=-O0 -DCMAKE_CXX_FLAGS=-O0 \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DPYTHON_EXECUTABLE="$VENV/bin/python" \
    > "$out/colcon.log" 2>&1; then
  tail -40 "$out/colcon.log" >&2
  echo "build_test_interfaces: colcon build failed (whole log: $out/colcon.log)" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "$out/install"
