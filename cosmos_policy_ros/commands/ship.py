"""`cosmos-policy-ros ship CHECKPOINT TARGET [--force]`: a training checkpoint -> models/<name>.

    cosmos-policy-ros ship runs/train/sim_cube_act/checkpoints/step_0006000 \
        models/sim_transfer_cube --force
loads afterwards as `--checkpoint sim_transfer_cube` (training/ship.py says what is kept).
"""


def add_arguments(parser) -> None:
    parser.add_argument('checkpoint', help='a checkpoint directory written by `train` '
                        '(runs/train/<name>/checkpoints/step_N or .../best)')
    parser.add_argument('target', help='the model directory to write, e.g. models/<name>')
    parser.add_argument('--force', action='store_true',
                        help='replace the weights already in TARGET (its other files are kept)')
    parser.add_argument('--max-mb', type=float, default=40.0,
                        help='refuse weights larger than this (models/ holds small checkpoints)')


def run(args) -> int:
    from cosmos_policy_ros.training.ship import ShipError, ship
    try:
        summary = ship(args.checkpoint, args.target, force=args.force, max_mb=args.max_mb)
    except ShipError as exc:
        raise SystemExit(f'ship: {exc}') from None
    print(f"shipped {args.checkpoint} -> {summary['target']}: {summary['megabytes']} MB, "
          f"step {summary['step']} of this run, {summary['steps_in_all']} steps in all; "
          f"dropped {summary['dropped'] or 'nothing'}")
    return 0
