#!/usr/bin/env bash
# Set up the environments (if needed) and run the tests; this is what CI runs.
#
#   bash scripts/test.sh              all three stages:
#     kilted  .venv        ruff, then the whole suite on Kilted wheels (Fast DDS 3), Py 3.11
#     jazzy   .venv-jazzy  the graph tests on ROS 2 Jazzy wheels (rclpy 7.1, Fast DDS 2.14: the
#                          API and DDS generation of Humble/Jazzy): sim -> policy -> controller,
#                          camera frame delivery with the Fast DDS profile, and the Interbotix
#                          bridge against interbotix_xs_msgs built here from its .msg/.srv files
#     py310   .venv310     Python 3.10 (Humble's), no ROS: [sim,data,hw] installed, [model]
#                          resolved, the ROS-free tests that need no torch
#   bash scripts/test.sh ARGS...      the kilted stage only, ARGS going to pytest (as before)
#   STAGES="jazzy py310" bash scripts/test.sh    the named stages
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl PYTHONUNBUFFERED=1

if [ $# -gt 0 ]; then
  STAGES=${STAGES:-kilted}
else
  STAGES=${STAGES:-kilted jazzy py310}
fi

# The Jazzy graph tests: one sim + controller bring-up (25 Hz execution inside the safety gate,
# chunk rejection, e-stop, watchdog) and the sync closed loop with the policy node.
JAZZY_TESTS=(
  tests/test_rosenv.py
  tests/test_camera_stream.py
  tests/test_dynamixel_interbotix_bridge.py
  'tests/test_policy_graph.py::TestControllerOnSim'
  'tests/test_policy_graph.py::test_policy_sync_closed_loop_on_the_sim'
)
# ROS-free and torch-free (the PyPI torch for cp310 is the ~3 GB CUDA build).
PY310_TESTS=(
  tests/test_python310.py tests/test_rosenv.py tests/test_record_keys.py tests/test_safety.py
  tests/test_chunks.py tests/test_teleop.py tests/test_dynamixel_protocol.py
  tests/test_dynamixel_bus.py tests/test_udev.py tests/test_calibrate.py tests/test_cameras.py
  tests/test_sim.py tests/test_launch_parity.py tests/test_controller_runtime.py
  tests/test_joint_command.py
)

# Headless Chromium for the dashboard's browser test (tests/test_dashboard.py), from Debian.
ensure_chromium() {
  command -v chromium >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing chromium (apt) for the dashboard browser test"
    # A failed install costs the browser test only (it skips, saying why), not the run.
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends chromium fonts-liberation >/dev/null; } ||
      echo "test.sh: apt could not install chromium; the dashboard browser test will skip" >&2
  else
    echo "test.sh: chromium is missing and cannot be installed here (needs root and apt-get);" \
      "the dashboard browser test will skip" >&2
  fi
}

stage_kilted() {
  bash scripts/setup.sh
  ensure_chromium
  # Lint first (well under a second): ruff.toml, 99 columns as ament_flake8, complexity <= 15.
  .venv/bin/ruff check .
  .venv/bin/python -m pytest -q -ra --durations=15 "$@" tests
}

stage_jazzy() {
  bash scripts/setup.sh --distro jazzy
  local prefix
  prefix=$(bash scripts/build_test_interfaces.sh .venv-jazzy | tail -1)
  # interbotix_xs_msgs on PYTHONPATH / LD_LIBRARY_PATH for the tests and the nodes they start
  # (colcon's setup scripts read unset variables).
  # shellcheck disable=SC1091
  (set +u && source "$prefix/local_setup.bash" && set -u &&
     .venv-jazzy/bin/python -m pytest -q -ra -W 'ignore::DeprecationWarning:lark.utils' \
       "${JAZZY_TESTS[@]}")
}

stage_py310() {
  bash scripts/setup.sh --python 3.10
  .venv310/bin/python -m pytest -q -ra "${PY310_TESTS[@]}"
}

# Each stage's environment takes 1-3 GB (.venv 2.5, .venv-jazzy 2.4, .venv310 0.9) and pip
# unpacks wheels in TMPDIR first: say so before pip fails half-way with ENOSPC.
stage_venv() {
  case "$1" in kilted) echo .venv ;; jazzy) echo .venv-jazzy ;; py310) echo .venv310 ;; esac
}

check_disk() {
  local free_mb need_mb=4000
  [ "$1" = py310 ] && need_mb=1500
  free_mb=$(df -Pm . "${TMPDIR:-/tmp}" | awk 'NR > 1 {print $4}' | sort -n | head -1)
  if [ "$free_mb" -lt "$need_mb" ]; then
    echo "test.sh: only ${free_mb} MB free on . or ${TMPDIR:-/tmp}; stage $1 needs about" \
      "${need_mb} MB (its venv and pip's unpacking). Free space (old clones in /tmp, runs/) or" \
      "set TMPDIR to a roomier disk." >&2
    exit 1
  fi
}

for stage in $STAGES; do
  case "$stage" in
    kilted|jazzy|py310) ;;
    *) echo "test.sh: unknown stage $stage (kilted, jazzy, py310)" >&2; exit 2 ;;
  esac
  echo "=== test stage: $stage"
  [ -d "$(stage_venv "$stage")" ] || check_disk "$stage"
  started=$SECONDS
  "stage_$stage" "$@"
  echo "=== test stage $stage passed in $((SECONDS - started)) s"
done
