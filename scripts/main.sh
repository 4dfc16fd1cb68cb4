#!/usr/bin/env bash
# The main job on the embedded default: set up, then run the shipped trained policy
# (models/sim_transfer_cube) on the simulated ALOHA through the ROS graph (sim_robot -> policy
# -> 25 Hz controller, separate processes on loopback, lockstep on sim time) for a few seeded
# episodes it never saw in training, and print its success rate with a 95 % interval.
#
#   EPISODES=5 CHECKPOINT=sim_transfer_cube TASK=transfer_cube EXECUTE_STEPS=10 ENSEMBLE=1 \
#     bash scripts/main.sh
#   UNTRAINED=1 bash scripts/main.sh     the policy graph with random weights (pipeline check)
#
# Recording demonstrations is its own command (README, "Record, fine-tune, evaluate").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
if [ -n "${UNTRAINED:-}" ]; then
  # CPU inference of the sim preset takes seconds of sim time: accept chunks up to 30 s old
  # (the controller's default, 2 s, suits a GPU) and render the cameras at 10 Hz of sim time.
  # Random weights jump several rad between points: the controller's jump check is off.
  exec .venv/bin/cosmos-policy-ros run-policy --preset "${PRESET:-sim}" \
    --max-chunk-age 30 --camera-rate 10 --max-jump-rad 0 --duration "${DURATION:-120}" \
    --out runs/policy
fi
# Unfilmed episodes render the cameras at 2 Hz of sim time (rendering is ~0.2 s a set here):
# frames stay fresher than the controller's 1 s observation timeout, so every chunk runs its
# course. The policy is queried every 10 actions and the controller plays, for each tick, the
# mean of what every chunk covering it predicted (temporal ensembling, ENSEMBLE=0 turns it
# off; the reference plays whole chunks, EXECUTE_STEPS=50 ENSEMBLE=0): its model card measures
# what each does for this policy.
ensemble=(--ensemble)
[ "${ENSEMBLE:-1}" = 0 ] && ensemble=()
exec .venv/bin/cosmos-policy-ros eval --checkpoint "${CHECKPOINT:-sim_transfer_cube}" \
  --task "${TASK:-transfer_cube}" --episodes "${EPISODES:-5}" --seed "${SEED:-1000}" \
  --execute-steps "${EXECUTE_STEPS:-10}" "${ensemble[@]}" --videos "${VIDEOS:-1}" \
  --camera-rate 2 --out runs/main
