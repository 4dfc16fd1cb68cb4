"""Checkpoints: the released Cosmos Policy / Wan2.1 files and our own safetensors format.

Released files are torch pickles; they are read with `torch.load(weights_only=True)`, the
restricted loader that only rebuilds tensors and plain containers, never arbitrary objects.
Our format is a directory: model.safetensors (every module's state, keys '<module>.<key>')
plus config.yaml (the ModelPreset and caller extras), written atomically.
"""
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from cosmos_policy_ros.model.config import (
    ConfigError,
    DiTConfig,
    ModelPreset,
    VAEConfig,
    get_preset,
    preset_from_dict,
    preset_to_dict,
)
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.vae import WanVAE

FORMAT = 'cosmos-policy-ros/checkpoint-v1'
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.yaml'
STATISTICS_FILE = 'dataset_statistics.json'   # written beside the weights by `train`
_RELEASE_PREFIXES = ('net.', 'net_ema.')


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated or does not fit the model."""


def load_state_strict(module: nn.Module, state: Mapping[str, Tensor], where: str,
                      assign: bool = False) -> None:
    """load_state_dict(strict=True), with errors that name every bad key and both shapes."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f'{key}: checkpoint {tuple(state[key].shape)} vs model '
                  f'{tuple(expected[key].shape)}'
                  for key in expected if key in state and state[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f'missing keys {_abbrev(missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_abbrev(unexpected)}')
    if mismatched:
        problems.append(f'shape mismatch {_abbrev(mismatched)}')
    if problems:
        raise CheckpointError(f'{where}: does not fit {type(module).__name__}: '
                              + '; '.join(problems)
                              + '. Use the model config/preset this checkpoint was trained with '
                              'or the matching file.')
    module.load_state_dict(state, strict=True, assign=assign)


def _abbrev(items: list[str], limit: int = 8) -> str:
    shown = ', '.join(items[:limit])
    return f'[{shown}{f", ... ({len(items) - limit} more)" if len(items) > limit else ""}]'


def _torch_load(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} does not exist; check the path or download it')
    try:
        try:  # memory-map zip checkpoints: the 2B file need not be copied into RAM
            data = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as exc:
            if 'mmap' not in str(exc):
                raise
            data = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zipfile/pickle/EOF errors of every kind
        if 'Unsupported global' in str(exc):
            raise CheckpointError(
                f'{path}: contains pickled objects other than tensors; refusing to unpickle it '
                '(restricted loader). Re-export it as a plain state dict.') from None
        raise CheckpointError(f'{path}: corrupt or truncated checkpoint ({type(exc).__name__}: '
                              f'{exc}); download or copy it again') from None
    if isinstance(data, Mapping):  # some trainers nest the state dict
        for key in ('model', 'state_dict'):
            if key in data and isinstance(data[key], Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor)
                                                for v in data.values()):
        raise CheckpointError(f'{path}: expected a state dict (name -> tensor), got '
                              f'{type(data).__name__}')
    return dict(data)


def select_release_weights(state: Mapping[str, Tensor], prefer_ema: bool = False,
                           where: str = 'checkpoint') -> dict[str, Tensor]:
    """Strip the 'net.' (or 'net_ema.') prefix; drop TransformerEngine '_extra_state' keys."""
    present = [p for p in _RELEASE_PREFIXES if any(k.startswith(p) for k in state)]
    if present:
        use_ema = 'net_ema.' in present and (prefer_ema or 'net.' not in present)
        prefix = 'net_ema.' if use_ema else 'net.'
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    elif any(k.startswith(('model.', 'module.')) for k in state):
        raise CheckpointError(f'{where}: keys start with model./module., not net.; this is not '
                              'a Cosmos Policy DiT checkpoint')
    return {k.replace('_checkpoint_wrapped_module.', ''): v for k, v in state.items()
            if not k.endswith('_extra_state')}


def load_released_dit(path: str | Path, cfg: DiTConfig | None = None,
                      prefer_ema: bool = False) -> DiT:
    """The released DiT (e.g. Cosmos-Policy-ALOHA-Predict2-2B.pt) in the file's dtype.

    cfg defaults to the 2b preset. Missing deterministic buffers (RoPE ranges, training
    counters) are filled in; every real parameter must be present with the right shape.
    """
    cfg = cfg or get_preset('2b').dit
    state = select_release_weights(_torch_load(path), prefer_ema, where=str(path))
    for name, value in DiT.default_buffers(cfg).items():
        state.setdefault(name, value)
    with torch.device('meta'):  # no random init of ~2 B parameters: assign the file's tensors
        net = DiT(cfg)
    load_state_strict(net, state, where=str(path), assign=True)
    return net.eval()


def load_wan_vae(path: str | Path, cfg: VAEConfig | None = None) -> WanVAE:
    """The Wan2.1 tokenizer.pth (a raw state dict with encoder./conv1./conv2./decoder. keys)."""
    cfg = cfg or get_preset('2b').vae
    with torch.device('meta'):
        vae = WanVAE(cfg)
    load_state_strict(vae, _torch_load(path), where=str(path), assign=True)
    return vae.eval()


def save_checkpoint(directory: str | Path, model_state: Mapping[str, nn.Module | Mapping],
                    preset: ModelPreset, extra: Mapping[str, Any] | None = None) -> Path:
    """Write <directory>/model.safetensors + config.yaml; each file replaced atomically."""
    directory = Path(directory)
    tensors, modules = {}, {}
    for name, state in model_state.items():
        if '.' in name or not name:
            raise CheckpointError(f'save_checkpoint: module name {name!r} must be non-empty '
                                  'and contain no "."')
        state = state.state_dict() if isinstance(state, nn.Module) else state
        modules[name] = len(state)
        for key, value in state.items():
            if not isinstance(value, Tensor):
                raise CheckpointError(f'save_checkpoint: {name}.{key} is a '
                                      f'{type(value).__name__}, not a tensor')
            tensors[f'{name}.{key}'] = value.detach().to('cpu', copy=True).contiguous()
    config = {'format': FORMAT, 'preset': preset_to_dict(preset), 'modules': modules,
              'extra': dict(extra or {})}
    try:
        config_text = yaml.safe_dump(config, sort_keys=False)
    except yaml.YAMLError as exc:
        raise CheckpointError(f'save_checkpoint: extra must hold only YAML-able values '
                              f'(str, int, float, bool, list, dict): {exc}') from None
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / WEIGHTS_FILE,
                  lambda tmp: save_file(tensors, tmp, metadata={'format': FORMAT}))
    _atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(config_text))
    return directory


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.')
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class LoadedCheckpoint(NamedTuple):
    """What load_checkpoint returns; unpacks as (states, preset, extra)."""
    states: dict[str, dict[str, Tensor]]
    preset: ModelPreset
    extra: dict[str, Any]

    def build(self, name: str, module: nn.Module) -> nn.Module:
        """Put states[name] strictly into `module` (may be on the meta device) and return it;
        the tensors are assigned, so the module takes the saved dtype."""
        if name not in self.states:
            raise CheckpointError(f'checkpoint has no module {name!r}; it has '
                                  f'{sorted(self.states)}')
        load_state_strict(module, self.states[name], where=f'checkpoint module {name!r}',
                          assign=True)
        return module.eval()

    @property
    def dit(self) -> DiT:
        """A new DiT of the preset with the 'dit' weights."""
        with torch.device('meta'):
            module = DiT(self.preset.dit)
        return self.build('dit', module)

    @property
    def vae(self) -> WanVAE:
        """A new WanVAE of the preset with the 'vae' weights."""
        with torch.device('meta'):
            module = WanVAE(self.preset.vae)
        return self.build('vae', module)


def load_checkpoint(directory: str | Path) -> LoadedCheckpoint:
    """-> (states {module name: state dict}, preset, extra) as written by save_checkpoint;
    `.dit` / `.vae` build the modules when the checkpoint saved them under those names."""
    directory = Path(directory)
    weights, config_path = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    for path in (weights, config_path):
        if not path.is_file():
            raise CheckpointError(f'{directory}: missing {path.name}; not a checkpoint written '
                                  'by save_checkpoint (or copied incompletely)')
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f'{config_path}: not valid YAML ({exc})') from None
    if not isinstance(config, Mapping) or config.get('format') != FORMAT:
        found = config.get('format') if isinstance(config, Mapping) else config
        raise CheckpointError(f'{config_path}: format must be {FORMAT!r}, got {found!r}')
    try:
        preset = preset_from_dict(config.get('preset'), where=f'{config_path}: preset')
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'{weights}: corrupt or truncated safetensors file ({exc}); '
                              'restore it from a good copy') from None
    states: dict[str, dict[str, Tensor]] = {name: {} for name in config.get('modules', {})}
    for key, value in tensors.items():
        name, _, sub = key.partition('.')
        if name not in states:
            raise CheckpointError(f'{weights}: tensor {key!r} belongs to no module listed in '
                                  f'{config_path.name} ({sorted(states)})')
        states[name][sub] = value
    for name, count in config.get('modules', {}).items():
        if len(states[name]) != count:
            raise CheckpointError(f'{weights}: module {name!r} has {len(states[name])} tensors, '
                                  f'{config_path.name} says {count}; the files do not match')
    return LoadedCheckpoint(states, preset, dict(config.get('extra') or {}))


def shipped_models() -> list[str]:
    """Names of the trained checkpoints shipped under models/ (directories with weights)."""
    from cosmos_policy_ros.paths import share_path
    root = share_path('models')
    return sorted(p.name for p in root.iterdir() if (p / WEIGHTS_FILE).is_file()) \
        if root.is_dir() else []


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint path as given, or the name of a shipped model (models/<name>/)."""
    from cosmos_policy_ros.paths import share_path
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = share_path('models', str(name_or_path))
    if '/' not in str(name_or_path) and (shipped / WEIGHTS_FILE).is_file():
        return shipped
    raise CheckpointError(f'checkpoint {str(name_or_path)!r} is neither a file/directory nor a '
                          f'shipped model; shipped models: {shipped_models()}')


def checkpoint_statistics(checkpoint: str | Path) -> Path | None:
    """The dataset statistics saved with one of our checkpoints, if any."""
    if not checkpoint:
        return None
    path = resolve_checkpoint(checkpoint)
    candidate = path / STATISTICS_FILE if path.is_dir() else None
    return candidate if candidate is not None and candidate.is_file() else None
