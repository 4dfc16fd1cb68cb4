"""Scripted expert success rate per sim task over seeded episodes (no rendering).

    .venv/bin/python benchmarks/expert_success.py --episodes 20 [--plot expert_success.png]

Each episode: sample the seed's object poses, plan the expert's joint trajectory, replay the
follower commands (what teleop sends) in AlohaSim and check gym-aloha's success (max reward 4).
"""
import argparse
import time

from tqdm import tqdm

from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.sim.expert import run_episode
from cosmos_policy_ros.sim.tasks import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', type=int, default=20)
    parser.add_argument('--first-seed', type=int, default=0)
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--calibration', default='aloha_sim')
    parser.add_argument('--plot', help='write a bar chart of the success rates here')
    args = parser.parse_args()
    calibration = load_calibration(args.calibration)
    rates, rewards = {}, {}
    for task in args.tasks:
        start = time.perf_counter()
        results = [run_episode(task, seed, calibration)
                   for seed in tqdm(range(args.first_seed, args.first_seed + args.episodes),
                                    desc=task)]
        rates[task] = sum(r.success for r in results) / len(results)
        rewards[task] = [r.max_reward for r in results]
        failed = [r.seed for r in results if not r.success]
        print(f'{task}: success {rates[task]:.0%} ({sum(r.success for r in results)}/'
              f'{len(results)}), failed seeds {failed}, '
              f'{(time.perf_counter() - start) / len(results):.2f} s/episode')
    print('\n| task | episodes | success rate | max-reward histogram (0..4) |')
    print('|---|---|---|---|')
    for task, rate in rates.items():
        histogram = [rewards[task].count(k) for k in range(5)]
        print(f'| {task} | {args.episodes} | {rate:.0%} | {histogram} |')
    if args.plot:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        figure, axis = plt.subplots(figsize=(4, 3))
        axis.bar(list(rates), [100 * r for r in rates.values()])
        axis.set_ylabel('success [%]')
        axis.set_ylim(0, 100)
        axis.set_title(f'scripted expert, {args.episodes} seeds/task')
        figure.tight_layout()
        figure.savefig(args.plot)
        print(f'plot: {args.plot}')


if __name__ == '__main__':
    main()
