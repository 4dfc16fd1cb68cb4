"""`cosmos-policy-ros train CONFIG.yaml [key=value ...]`: fine-tune or train a policy.

Runs the same under `torchrun --nproc-per-node N -m cosmos_policy_ros.cli train ...` (DDP;
`fsdp=true` shards the DiT). Outputs go to the config's output directory (default
runs/train/<name>): checkpoints/, best/, train.csv, val.csv, learning_curves.png.
"""


def add_arguments(parser) -> None:
    parser.add_argument('config', help='training YAML (see config/train/*.yaml)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides, e.g. optim.steps=200 data.val_episodes=2')
    parser.add_argument('--resume', action='store_true',
                        help="continue from the newest checkpoint in the run's output directory")
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def run(args) -> int:
    from cosmos_policy_ros.model.checkpoint import CheckpointError
    from cosmos_policy_ros.model.config import ConfigError
    from cosmos_policy_ros.model.normalization import StatisticsError
    from cosmos_policy_ros.training.checkpoints import CheckpointWriteError
    from cosmos_policy_ros.training.config import load_train_config
    from cosmos_policy_ros.training.dataset import DataError
    from cosmos_policy_ros.training.episodes import EpisodeError
    from cosmos_policy_ros.training.latent_cache import CacheError
    from cosmos_policy_ros.training.trainer import TrainingError, train
    try:
        config = load_train_config(args.config, args.overrides)
        result = train(config, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, DataError, EpisodeError, StatisticsError, CacheError,
            CheckpointError) as exc:
        print(f'error: {exc}')
        return 2
    except (TrainingError, CheckpointWriteError) as exc:
        print(f'error: {exc}')
        return 1
    print(f'{result.status} at step {result.step}: last checkpoint {result.last_checkpoint}, '
          f'best {result.best}; logs in {result.run_dir}')
    return 130 if result.status == 'interrupted' else 0
