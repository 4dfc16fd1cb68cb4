"""Joint jumps inside a trained policy's chunks: the figure behind the controller's
`max_jump_rad` default (control.runtime rejects chunks that jump more).

Runs the in-process closed loop (evaluation.closed_loop, the lockstep graph's twin) with a
checkpoint and records, for every chunk, in command units on the arm joints (grippers are
excluded, as in the check): the largest step between consecutive points, and the distance of
the first point from the measured position it was predicted from. Prints a table and writes
--out JSON.

    MUJOCO_GL=egl .venv/bin/python benchmarks/chunk_jumps.py --checkpoint sim_transfer_cube \\
        --episodes 3 --seed 1000
"""
import argparse
import json
from pathlib import Path

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control.units import robot_to_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='sim_transfer_cube')
    parser.add_argument('--task', default='transfer_cube')
    parser.add_argument('--episodes', type=int, default=3)
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--num-steps', type=int, default=10)
    parser.add_argument('--out', default='runs/bench/chunk_jumps.json')
    args = parser.parse_args()

    from cosmos_policy_ros.evaluation.closed_loop import ClosedLoop, policy_query
    from cosmos_policy_ros.model.policy import CosmosPolicy
    gripper = load_calibration('aloha_sim').gripper
    model = CosmosPolicy.from_config(checkpoint=args.checkpoint)
    query = policy_query(model, args.num_steps)
    measured = []                                   # proprio at each query (robot units)

    def recording_query(observation, seed):
        measured.append(np.asarray(observation.proprio, np.float64))
        return query(observation, seed)

    loop = ClosedLoop(args.task, recording_query)
    chunks = []
    try:
        for i in range(args.episodes):
            result = loop.run(i, args.seed + i)
            chunks += result.chunks
            print(f'episode {i} seed {args.seed + i}: {len(result.chunks)} chunks, '
                  f'max reward {result.max_reward}', flush=True)
    finally:
        loop.close()
    arm = list(names.ARM_JOINT_INDICES)
    consecutive, first = [], []
    per_joint = {names.VECTOR_NAMES[i]: {'consecutive': 0.0, 'first_vs_measured': 0.0}
                 for i in arm}
    for chunk, proprio in zip(chunks, measured):
        commands = robot_to_command(chunk, gripper)[:, arm]
        start = robot_to_command(proprio[None], gripper)[0, arm]
        steps = np.abs(np.diff(commands, axis=0)).max(axis=0)
        distance = np.abs(commands[0] - start)
        consecutive.append(float(steps.max()))
        first.append(float(distance.max()))
        for column, index in enumerate(arm):
            joint = per_joint[names.VECTOR_NAMES[index]]
            joint['consecutive'] = max(joint['consecutive'], float(steps[column]))
            joint['first_vs_measured'] = max(joint['first_vs_measured'],
                                             float(distance[column]))
    rows = {}
    for name, values in (('consecutive', consecutive), ('first_vs_measured', first)):
        values = np.asarray(values)
        rows[name] = {'chunks': int(values.size), 'max': float(values.max()),
                      'p99': float(np.percentile(values, 99)),
                      'p50': float(np.percentile(values, 50))}
        print(f'{name:18s} over {values.size} chunks: max {values.max():.4f} rad, '
              f'p99 {rows[name]["p99"]:.4f}, p50 {rows[name]["p50"]:.4f}')
    for joint, value in per_joint.items():
        print(f'  {joint:20s} consecutive max {value["consecutive"]:.4f} rad, first vs '
              f'measured max {value["first_vs_measured"]:.4f} rad')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'settings': vars(args), 'arm_joint_jumps_rad': rows,
                               'per_joint_max_rad': per_joint,
                               'per_chunk': {'consecutive': consecutive,
                                             'first_vs_measured': first}}, indent=1))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
