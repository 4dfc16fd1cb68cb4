#!/usr/bin/env bash
# The main job on the embedded default (simulation, small model): set up, record scripted
# demonstrations through the ROS graph and export them, then run the policy graph on the sim.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
.venv/bin/cosmos-policy-ros record --task transfer_cube --episodes "${EPISODES:-2}" --output runs/demos
.venv/bin/cosmos-policy-ros run-policy --preset "${PRESET:-tiny}" --duration "${DURATION:-120}" --out runs/policy
