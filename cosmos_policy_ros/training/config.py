"""The `train` YAML: model preset + data + optimisation, with `key=value` overrides.

Every section is a frozen dataclass; unknown or mistyped keys fail with the file, the key and
the valid names. Defaults are the released ALOHA fine-tuning recipe (cosmos_policy.md §9):
AdamW (0.9, 0.99), eps 1e-8, weight decay 0.1, gradient clip 1.0, LR 1e-4 with a linear
warm-up over 2K steps from 1e-6 x, linear decay to 0.3 x at 20K steps, then 0.06 x constant;
no EMA (the release trains without one); 50 % policy / 25 % world-model / 25 % value samples.
"""
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cosmos_policy_ros.model.config import ConfigError, build_config
from cosmos_policy_ros.model.layout import ValueMode
from cosmos_policy_ros.names import CAMERAS
from cosmos_policy_ros.training.augment import AugmentConfig


def _tuple(obj, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, str):
        value = (value,)
    object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class DataConfig:
    episodes: tuple = ()                # demonstration HDF5 files or directories
    rollouts: tuple = ()                # rollout files or directories (success labels)
    cameras: tuple = CAMERAS
    instruction: str = ''               # '' = each file's instruction attr (or folder name)
    val_episodes: float = 0.1           # held-out episodes: a count (>= 1) or a fraction
    split_seed: int = 0
    gamma: float = 0.998
    demo_sampling_prob: float = 0.5
    success_sampling_prob: float = 0.5
    demos_as_success_rollouts: bool = True
    world_model_prob: float = 0.5
    value_mode: str = ValueMode.V_SAS.value   # v_sas | v_sprime (planning model) | q_sa
    failed_demos: str = 'skip'          # demos without success: skip | rollout (as failures)
    statistics: str = ''                # '' = computed from the training split

    def __post_init__(self):
        for name in ('episodes', 'rollouts', 'cameras'):
            _tuple(self, name)
        ValueMode(self.value_mode)
        if self.failed_demos not in ('skip', 'rollout'):
            raise ConfigError(f'data.failed_demos must be skip or rollout, got '
                              f'{self.failed_demos!r}')
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f'data.gamma must be in (0, 1], got {self.gamma}')
        if self.val_episodes < 0:
            raise ConfigError(f'data.val_episodes must be >= 0, got {self.val_episodes}')


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool = True                # False: encode every batch on the fly (slow)
    dir: str = 'runs/latent_cache'
    draws: int = 4                      # augmentation draws per sample (draw 0 = test view)
    batch_size: int = 16

    def __post_init__(self):
        if self.draws < 1 or self.batch_size < 1:
            raise ConfigError('cache.draws and cache.batch_size must be >= 1')


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 1000
    batch_size: int = 32                # global batch (split over DDP ranks)
    lr: float = 1e-4
    warmup_steps: int = 2000
    warmup_start: float = 1e-6          # LR factor at step 0
    decay_steps: int = 20000            # end of the linear decay (first cycle)
    decay_to: float = 0.3               # LR factor reached at decay_steps
    tail: float = 0.06                  # constant LR factor after decay_steps
    betas: tuple = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.0              # 0: no EMA (the release); e.g. 0.999
    seed: int = 0

    def __post_init__(self):
        _tuple(self, 'betas')
        for name in ('steps', 'batch_size'):
            if getattr(self, name) < 1:
                raise ConfigError(f'optim.{name} must be >= 1, got {getattr(self, name)}')
        if not 0 <= self.warmup_steps <= self.decay_steps:
            raise ConfigError(f'optim: need 0 <= warmup_steps ({self.warmup_steps}) <= '
                              f'decay_steps ({self.decay_steps})')
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f'optim.ema_decay must be in [0, 1), got {self.ema_decay}')
        if self.lr <= 0:
            raise ConfigError(f'optim.lr must be > 0, got {self.lr}')


@dataclass(frozen=True)
class LossConfig:
    # Multiplies the action frame's loss. 1.0 is the reference: there the action frame is one
    # of 11 and, at full size, holds many copies of the chunk; at 64 px it holds one, and the
    # image frames dominate the gradient (docs/training.md, "Action loss weight").
    action_weight: float = 1.0

    def __post_init__(self):
        if not self.action_weight > 0:
            raise ConfigError(f'loss.action_weight must be > 0, got {self.action_weight}')


@dataclass(frozen=True)
class ValConfig:
    every: int = 500                    # steps between validations (0: only at the end)
    samples: int = 64                   # held-out samples, spread evenly over val episodes
    num_steps: int = 5                  # denoising steps for the validation predictions
    seed: int = 0


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 1000
    keep: int = 3                       # newest step checkpoints kept (best/ is separate)


@dataclass(frozen=True)
class TrainConfig:
    name: str = 'run'
    output: str = ''                    # '' = runs/train/<name>
    preset: Any = 'sim'                 # models/<name>.yaml, a YAML path, or a mapping
    init: str = ''                      # '' scratch | released .pt | our checkpoint directory
    vae: str = ''                       # our checkpoint dir with a 'vae' | tokenizer.pth
    allow_random_vae: bool = False      # train on a frozen random VAE (tests / ablations)
    text: str = ''                      # text source ('' = the preset's encoder)
    device: str = 'cpu'
    dtype: str = 'float32'              # bfloat16: autocast on CUDA
    threads: int = 0                    # torch CPU threads (0: torch default)
    fsdp: bool = False
    activation_checkpointing: bool = False
    log_every: int = 10
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    val: ValConfig = field(default_factory=ValConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    @property
    def output_dir(self) -> Path:
        return Path(self.output or f'runs/train/{self.name}')


SECTIONS = {'data': DataConfig, 'augment': AugmentConfig, 'cache': CacheConfig,
            'optim': OptimConfig, 'loss': LossConfig, 'val': ValConfig,
            'checkpoint': CheckpointConfig}


def apply_overrides(data: dict, overrides) -> dict:
    """`a.b=value` strings (value parsed as YAML) applied to a nested dict copy."""
    data = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for item in overrides:
        if '=' not in item:
            raise ConfigError(f'override {item!r}: expected key=value (e.g. optim.steps=200)')
        key, _, text = item.partition('=')
        value = yaml.safe_load(text) if text else ''
        node = data
        parts = key.strip().split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f'override {item!r}: {part!r} is not a section')
        node[parts[-1]] = value
    return data


def config_from_dict(data: Mapping, where: str = 'train config') -> TrainConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where}: expected a mapping, got {type(data).__name__}')
    data = dict(data)
    for name, cls in SECTIONS.items():
        if name in data:
            data[name] = build_config(cls, data[name] or {}, f'{where}: {name}')
    return build_config(TrainConfig, data, where)


def load_train_config(path: str | Path, overrides=()) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'train config {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML ({exc})') from None
    if isinstance(data, Mapping):
        data.setdefault('name', path.stem)
    return config_from_dict(apply_overrides(data, overrides), where=str(path))


def config_to_dict(config: TrainConfig) -> dict:
    """Plain YAML-able form (tuples as lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(config))))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
