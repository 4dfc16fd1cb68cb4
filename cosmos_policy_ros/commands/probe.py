"""`cosmos-policy-ros probe --checkpoint C --task T`: does the policy follow the object?

Compares the first chunk of each seed's episode with the scripted expert's targets for the
same object poses, joint by joint across seeds (evaluation/probe.py); prints the table and
writes probe.json. A gain near 0 on the joints that aim at the object (the right arm's waist
for transfer cube) means the policy does not see where the object is.
"""
import json
from pathlib import Path

from cosmos_policy_ros.sim.tasks import TASKS


def add_arguments(parser) -> None:
    parser.add_argument('--checkpoint', required=True,
                        help='a shipped model name (models/<name>), or a checkpoint directory')
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS))
    parser.add_argument('--episodes', type=int, default=20, help='seeds to probe (>= 3)')
    parser.add_argument('--seed', type=int, default=1000, help='first seed')
    parser.add_argument('--step', type=int, default=40,
                        help='25 Hz step of the first chunk to compare (0..49)')
    parser.add_argument('--num-steps', type=int, default=10, help='denoising steps')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--out', default='', help='output directory (default runs/probe/...)')


def run(args) -> int:
    import torch

    from cosmos_policy_ros.evaluation.probe import MIN_SEEDS, probe, table
    from cosmos_policy_ros.model.policy import CosmosPolicy
    # Checked before the model loads and the seeds run (compare() would refuse at the end).
    if args.episodes < MIN_SEEDS:
        raise SystemExit(f'--episodes must be >= {MIN_SEEDS} for correlations, got '
                         f'{args.episodes}')
    if args.threads:
        torch.set_num_threads(args.threads)
    model = CosmosPolicy.from_config(checkpoint=args.checkpoint)
    result = probe(model, args.task, range(args.seed, args.seed + args.episodes),
                   step=args.step, num_steps=args.num_steps)
    result['checkpoint'] = args.checkpoint
    out = Path(args.out or f'runs/probe/{Path(args.checkpoint).name}_{args.task}')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'probe.json').write_text(json.dumps(result, indent=1))
    print(f'{args.checkpoint} on {args.task}, first chunk step {args.step}, seeds '
          f'{args.seed}..{args.seed + args.episodes - 1}:')
    print(table(result))
    print(f'written {out / "probe.json"}')
    return 0
