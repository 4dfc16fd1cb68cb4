"""`cosmos-policy-ros eval --checkpoint C --task T --episodes N --seed S`: closed-loop success.

By default through the ROS 2 graph (sim_robot -> policy or planner -> controller, separate
processes, lockstep on sim time: the same seeds give the same result on any machine);
`--no-ros` runs the same loop in this process. Prints one line per episode and the success
rate with its 95 % interval; writes summary.json, success.png and mp4 videos of the first
episodes to --out; `--rollouts DIR` saves every episode as a rollout HDF5 (planning data).
"""
from pathlib import Path

from cosmos_policy_ros.runtime import RUNTIMES
from cosmos_policy_ros.schemas.controller import (
    CHUNK_SMOOTHING,
    ENSEMBLE,
    ENSEMBLE_DECAY,
    EXECUTE_STEPS,
)
from cosmos_policy_ros.sim.tasks import TASKS


def add_arguments(parser) -> None:
    parser.add_argument('--checkpoint', required=True,
                        help='a shipped model name (models/<name>), or a checkpoint directory')
    parser.add_argument('--task', default='transfer_cube', choices=sorted(TASKS))
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=1000,
                        help='seed of the first episode (episode i: seed + i); the shipped '
                        'models were trained on seeds below 1000')
    parser.add_argument('--num-steps', type=int, default=10, help='denoising steps per chunk')
    parser.add_argument('--execute-steps', type=int, default=EXECUTE_STEPS.default,
                        help=f'{EXECUTE_STEPS.description} (default {EXECUTE_STEPS.default})')
    parser.add_argument('--ensemble', action='store_true', help=ENSEMBLE.description)
    parser.add_argument('--ensemble-decay', type=float, default=ENSEMBLE_DECAY.default,
                        help=f'{ENSEMBLE_DECAY.description} (default {ENSEMBLE_DECAY.default})')
    parser.add_argument('--chunk-smoothing', type=int, default=CHUNK_SMOOTHING.default,
                        help=f'{CHUNK_SMOOTHING.description} (default '
                        f'{CHUNK_SMOOTHING.default})')
    parser.add_argument('--horizon', type=float, default=0.0,
                        help="episode length [sim s] (0: the task's, 8 s)")
    parser.add_argument('--videos', type=int, default=3, help='film the first N episodes')
    parser.add_argument('--rollouts', default='', help='write rollout HDF5 files here')
    parser.add_argument('--rollout-frame-stride', type=int, default=1,
                        help='--no-ros rollouts: render the cameras every k-th tick only '
                        '(k dividing 50 keeps every chunk start and end; ~k x faster)')
    parser.add_argument('--out', default='', help='output directory (default runs/eval/...)')
    parser.add_argument('--no-ros', action='store_true', help='in-process loop (no ROS)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--runtime', default='eager', choices=RUNTIMES,
                        help='network runtime (docs/inference.md)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--camera-rate', type=float, default=5.0,
                        help='ROS: sim camera rate of unfilmed episodes [Hz of sim time]; '
                        "above 1 / the controller's observation_timeout (1 s)")
    parser.add_argument('--planning', action='store_true', help='best-of-N planning')
    parser.add_argument('--planning-checkpoint', default='',
                        help="planning model (V(s')); '' = the policy itself")
    parser.add_argument('--num-candidates', type=int, default=4)
    parser.add_argument('--aggregation', default='majority_mean')
    parser.add_argument('--future-steps', type=_steps, default=(1, 3, 5),
                        help='planning: denoising steps of each future-state sample, e.g. 1,3,5')
    parser.add_argument('--value-steps', type=_steps, default=(1, 2, 3, 4, 5),
                        help='planning: denoising steps of each value sample, e.g. 1,2,3,4,5')
    parser.add_argument('--wall-timeout', type=float, default=1800.0,
                        help='ROS: wall seconds allowed per episode')


def _steps(text: str) -> tuple:
    import argparse
    try:
        return tuple(int(part) for part in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated step counts such as 1,3,5, got {text!r}') from None


def run(args) -> int:
    from cosmos_policy_ros.evaluation.run import EvalConfig, Outputs, run_in_process
    from cosmos_policy_ros.model.checkpoint import CheckpointError
    name = Path(str(args.checkpoint).rstrip('/')).name
    path = 'in-process' if args.no_ros else 'ros-graph'
    out = args.out or (f'runs/eval/{name}_{args.task}{"_planning" if args.planning else ""}_'
                       f'{path}')
    try:
        cfg = EvalConfig(checkpoint=args.checkpoint, task=args.task, episodes=args.episodes,
                         seed=args.seed, num_steps=args.num_steps,
                         execute_steps=args.execute_steps, ensemble=args.ensemble,
                         ensemble_decay=args.ensemble_decay,
                         chunk_smoothing=args.chunk_smoothing, horizon_s=args.horizon,
                         videos=args.videos, rollouts=args.rollouts,
                         rollout_frame_stride=args.rollout_frame_stride, out=out,
                         device=args.device, runtime=args.runtime, threads=args.threads,
                         camera_rate=args.camera_rate, planning=args.planning,
                         planning_checkpoint=args.planning_checkpoint,
                         num_candidates=args.num_candidates, aggregation=args.aggregation,
                         future_steps=args.future_steps, value_steps=args.value_steps,
                         wall_timeout=args.wall_timeout)
        if cfg.rollout_frame_stride > 1 and not args.no_ros:
            raise ValueError('--rollout-frame-stride > 1 needs --no-ros (the graph records '
                             'rollout frames from the 25 Hz camera topics)')
        outputs = Outputs(cfg, path)
        if args.no_ros:
            run_in_process(cfg, outputs.episode)
        else:
            from cosmos_policy_ros.ros.evaluation import run_ros
            run_ros(cfg, outputs.episode, Path(out) / 'logs')
    except (ValueError, CheckpointError) as exc:
        print(f'error: {exc}')
        return 2
    except (RuntimeError, TimeoutError) as exc:
        print(f'error: {exc}')
        if outputs.results:
            outputs.finish()
        return 1
    outputs.finish()
    return 0
