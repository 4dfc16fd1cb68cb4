"""Model configurations: the DiT, the Wan2.1 VAE and named presets (models/<name>.yaml).

ROS-free. `get_preset('2b')` is the released Cosmos-Policy 2B net + Wan2.1 tokenizer; `small`
trains in sim; `tiny` is for tests. Every error names the field (and the file) and the fix.
"""
import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cosmos_policy_ros.paths import share_path

# Wan2.1 latent statistics (per channel), as hard-coded by the released tokenizer wrapper.
WAN21_LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
TEXT_ENCODERS = ('t5', 'minilm')


class ConfigError(ValueError):
    """A model config or preset is unknown, malformed or inconsistent."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive_ints(obj, names) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                 f'{type(obj).__name__}.{name} must be a positive int, got {value!r}')


@dataclass(frozen=True)
class DiTConfig:
    """MiniTrainDIT/MinimalV1LVGDiT hyper-parameters (3D RoPE, AdaLN-LoRA, no biases)."""
    model_channels: int
    num_blocks: int
    num_heads: int
    mlp_ratio: float = 4.0
    crossattn_emb_channels: int = 1024
    adaln_lora_dim: int = 256
    in_channels: int = 16
    out_channels: int = 16
    patch_spatial: int = 2
    patch_temporal: int = 1
    max_img_h: int = 240
    max_img_w: int = 240
    max_frames: int = 128
    rope_h_extrapolation_ratio: float = 3.0
    rope_w_extrapolation_ratio: float = 3.0
    rope_t_extrapolation_ratio: float = 1.0
    concat_padding_mask: bool = True

    def __post_init__(self):
        _positive_ints(self, ('model_channels', 'num_blocks', 'num_heads',
                              'crossattn_emb_channels', 'adaln_lora_dim', 'in_channels',
                              'out_channels', 'patch_spatial', 'patch_temporal', 'max_img_h',
                              'max_img_w', 'max_frames'))
        _require(self.model_channels % self.num_heads == 0,
                 f'DiTConfig.model_channels ({self.model_channels}) must be divisible by '
                 f'num_heads ({self.num_heads})')
        _require(self.head_dim % 2 == 0 and self.head_dim >= 8,
                 f'DiTConfig: head_dim = model_channels/num_heads = {self.head_dim} must be even '
                 'and >= 8 for the 3D RoPE split; change num_heads')
        _require(self.mlp_ratio > 0, f'DiTConfig.mlp_ratio must be > 0, got {self.mlp_ratio}')
        for name in ('rope_h_extrapolation_ratio', 'rope_w_extrapolation_ratio',
                     'rope_t_extrapolation_ratio'):
            _require(getattr(self, name) > 0, f'DiTConfig.{name} must be > 0')
        for name, size, patch in (('max_img_h', self.max_img_h, self.patch_spatial),
                                  ('max_img_w', self.max_img_w, self.patch_spatial),
                                  ('max_frames', self.max_frames, self.patch_temporal)):
            _require(size % patch == 0, f'DiTConfig.{name} ({size}) must be a multiple of its '
                                        f'patch size ({patch})')

    @property
    def head_dim(self) -> int:
        return self.model_channels // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.model_channels * self.mlp_ratio)

    @property
    def patch_in_features(self) -> int:
        """x_embedder input: latent + condition-mask (+ padding-mask) channels per patch."""
        channels = self.in_channels + 1 + int(self.concat_padding_mask)
        return channels * self.patch_spatial ** 2 * self.patch_temporal


@dataclass(frozen=True)
class VAEConfig:
    """Wan2.1 causal video VAE (8x spatial, 4x temporal compression with the default mults)."""
    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temperal_downsample: tuple[bool, ...] = (False, True, True)  # (sic) the release's spelling
    temporal_window: int = 4
    latent_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latent_std: tuple[float, ...] = WAN21_LATENT_STD

    def __post_init__(self):
        for name in ('dim_mult', 'temperal_downsample', 'latent_mean', 'latent_std'):
            value = getattr(self, name)
            _require(isinstance(value, (list, tuple)),
                     f'VAEConfig.{name} must be a list, got {value!r}')
            object.__setattr__(self, name, tuple(value))
        _positive_ints(self, ('dim', 'z_dim', 'num_res_blocks', 'temporal_window'))
        _require(len(self.dim_mult) >= 2 and all(isinstance(m, int) and m > 0
                                                 for m in self.dim_mult),
                 f'VAEConfig.dim_mult must be >= 2 positive ints, got {self.dim_mult}')
        _require(len(self.temperal_downsample) == len(self.dim_mult) - 1,
                 f'VAEConfig.temperal_downsample needs len(dim_mult)-1 = {len(self.dim_mult) - 1} '
                 f'booleans, got {self.temperal_downsample}')
        _require(self.dim % 2 == 0, f'VAEConfig.dim must be even (decoder halves it), '
                                    f'got {self.dim}')
        for name in ('latent_mean', 'latent_std'):
            _require(len(getattr(self, name)) == self.z_dim,
                     f'VAEConfig.{name} needs z_dim = {self.z_dim} values, '
                     f'got {len(getattr(self, name))}')
        _require(all(s > 0 for s in self.latent_std), 'VAEConfig.latent_std must all be > 0')
        _require(self.temporal_window % self.temporal_compression == 0,
                 f'VAEConfig.temporal_window ({self.temporal_window}) must be a multiple of the '
                 f'temporal compression ({self.temporal_compression}), e.g. 4 or 16')

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_compression(self) -> int:
        return 2 ** sum(self.temperal_downsample)


@dataclass(frozen=True)
class ModelPreset:
    """A DiT + VAE + text-conditioning combination that a checkpoint is trained for."""
    name: str
    dit: DiTConfig
    vae: VAEConfig = field(default_factory=VAEConfig)
    image_size: int = 224
    text_dim: int | None = None  # None -> dit.crossattn_emb_channels
    text_tokens: int = 512
    text_encoder: str = 't5'
    # camera -> (top, left, height, width) as fractions of the camera frame: the region kept
    # before the resize to image_size (preprocess.crop_fraction). Empty: the whole frame, as
    # the released model. Lets a small image_size spend its pixels on the workspace.
    camera_crops: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        object.__setattr__(self, 'camera_crops', {
            str(camera): _crop_box(self.name, camera, box)
            for camera, box in dict(self.camera_crops or {}).items()})
        if self.text_dim is None:
            object.__setattr__(self, 'text_dim', self.dit.crossattn_emb_channels)
        _positive_ints(self, ('image_size', 'text_dim', 'text_tokens'))
        _require(self.text_dim == self.dit.crossattn_emb_channels,
                 f'preset {self.name!r}: text_dim ({self.text_dim}) must equal '
                 f'dit.crossattn_emb_channels ({self.dit.crossattn_emb_channels})')
        _require(self.text_encoder in TEXT_ENCODERS,
                 f'preset {self.name!r}: text_encoder {self.text_encoder!r} is not one of '
                 f'{list(TEXT_ENCODERS)}')
        _require(self.dit.in_channels == self.vae.z_dim == self.dit.out_channels,
                 f'preset {self.name!r}: dit.in_channels/out_channels '
                 f'({self.dit.in_channels}/{self.dit.out_channels}) must equal vae.z_dim '
                 f'({self.vae.z_dim})')
        step = self.vae.spatial_compression * self.dit.patch_spatial
        _require(self.image_size % step == 0,
                 f'preset {self.name!r}: image_size ({self.image_size}) must be a multiple of '
                 f'VAE compression x patch = {step}')
        _require(self.latent_size <= min(self.dit.max_img_h, self.dit.max_img_w),
                 f'preset {self.name!r}: latent size {self.latent_size} exceeds dit.max_img_h/w')

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae.spatial_compression


def _crop_box(preset: str, camera, box) -> tuple[float, float, float, float]:
    where = f'preset {preset!r}: camera_crops.{camera}'
    _require(isinstance(box, (list, tuple)) and len(box) == 4
             and all(isinstance(v, (int, float)) for v in box),
             f'{where} must be [top, left, height, width] (fractions of the frame), got {box!r}')
    top, left, height, width = (float(v) for v in box)
    _require(0 <= top < 1 and 0 <= left < 1 and height > 0 and width > 0
             and top + height <= 1 + 1e-9 and left + width <= 1 + 1e-9,
             f'{where} = {list(box)} leaves the frame: need 0 <= top, left; height, width > 0; '
             'top + height <= 1 and left + width <= 1')
    return top, left, height, width


def build_config(cls, data: Any, where: str):
    """cls(**data) with errors naming the unknown/missing field and the valid ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where}: expected a mapping of {cls.__name__} fields, '
                          f'got {type(data).__name__}')
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise ConfigError(f'{where}: unknown field {key!r}{hint}; valid: {sorted(known)}')
    try:
        return cls(**data)
    except TypeError as exc:  # missing required field
        raise ConfigError(f'{where}: {exc}') from None
    except ConfigError as exc:
        raise ConfigError(f'{where}: {exc}') from None


def preset_from_dict(data: Any, where: str = 'preset') -> ModelPreset:
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where}: expected a mapping with name, dit, vae, ..., '
                          f'got {type(data).__name__}')
    data = dict(data)
    _require('dit' in data, f'{where}: missing required section "dit"')
    data['dit'] = build_config(DiTConfig, data['dit'], f'{where}: dit')
    if 'vae' in data:
        data['vae'] = build_config(VAEConfig, data['vae'] or {}, f'{where}: vae')
    return build_config(ModelPreset, data, where)


def preset_to_dict(preset: ModelPreset) -> dict:
    """Plain-YAML form of a preset (inverse of preset_from_dict)."""
    data = dataclasses.asdict(preset)
    for key in ('dim_mult', 'temperal_downsample', 'latent_mean', 'latent_std'):
        data['vae'][key] = list(data['vae'][key])
    data['camera_crops'] = {camera: list(box) for camera, box in preset.camera_crops.items()}
    return data


def load_preset_yaml(path: str | Path) -> ModelPreset:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'model preset file {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML ({exc}); fix the syntax') from None
    if isinstance(data, Mapping) and 'name' not in data:
        data = {'name': path.stem, **data}
    return preset_from_dict(data, where=str(path))


def known_presets() -> list[str]:
    return sorted(p.stem for p in share_path('models').glob('*.yaml'))


def get_preset(name_or_yaml_path: str | Path) -> ModelPreset:
    """A preset by name ('2b', 'small', 'tiny', ... from models/) or from a YAML file path."""
    text = str(name_or_yaml_path)
    if text.endswith(('.yaml', '.yml')) or Path(text).is_file():
        return load_preset_yaml(text)
    known = known_presets()
    if text not in known:
        close = difflib.get_close_matches(text, known, n=1, cutoff=0.3)
        hint = f'did you mean {close[0]!r}? ' if close else ''
        raise ConfigError(f'unknown model preset {text!r}; {hint}known presets: {known} '
                          '(or pass a path to a preset .yaml file)')
    return load_preset_yaml(share_path('models', text + '.yaml'))
