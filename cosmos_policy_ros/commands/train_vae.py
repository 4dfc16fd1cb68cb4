"""`cosmos-policy-ros train-vae CONFIG.yaml [key=value ...]`: train a preset's VAE on frames.

Writes runs/vae/<name>/final (a checkpoint directory with a 'vae' module and the preset
including the measured latent statistics); point a train config's `vae:` at it.
"""


def add_arguments(parser) -> None:
    parser.add_argument('config', help='train-vae YAML (see config/train/vae_sim.yaml)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides, e.g. optim.steps=500')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the newest checkpoint')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def run(args) -> int:
    from cosmos_policy_ros.model.config import ConfigError
    from cosmos_policy_ros.training.dataset import DataError
    from cosmos_policy_ros.training.episodes import EpisodeError
    from cosmos_policy_ros.training.vae_trainer import VaeTrainer, load_vae_config
    try:
        config = load_vae_config(args.config, args.overrides)
        final = VaeTrainer(config, resume=args.resume, progress=not args.no_progress).run_loop()
    except (ConfigError, DataError, EpisodeError) as exc:
        print(f'error: {exc}')
        return 2
    if not final.is_dir():      # stopped by a signal: the newest checkpoint holds the state
        print(f'interrupted: resume with --resume (checkpoints in {final.parent / "checkpoints"})')
        return 130
    print(f'VAE weights: {final}')
    return 0
