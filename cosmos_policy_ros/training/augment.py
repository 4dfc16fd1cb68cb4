"""The reference's train-time image augmentation, with one parameter draw per sample.

`use_stronger_image_aug` (cosmos_policy.md §8): every image of a sample (current and future
frames of all cameras) gets the same random 90 %-area square crop resized back (antialiased
bilinear), rotation U(-5, 5) degrees (nearest, zero fill), brightness U(0.7, 1.3), contrast
U(0.6, 1.4), saturation U(0.5, 1.5) and hue U(-0.05, 0.05). Draw 0 is the deterministic
test-time view (centre crop, no colour change), exactly what the deployed policy sees.

Images are uint8 (N, S, S, 3) at the model size; draws are reproducible from their key.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_policy_ros.model.preprocess import CROP_AREA, center_crop_resize


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    crop_area: float = CROP_AREA
    rotation_deg: float = 5.0
    brightness: tuple = (0.7, 1.3)
    contrast: tuple = (0.6, 1.4)
    saturation: tuple = (0.5, 1.5)
    hue: float = 0.05

    def __post_init__(self):
        if not 0.0 < self.crop_area <= 1.0:
            raise ValueError(f'augment.crop_area must be in (0, 1], got {self.crop_area}')
        for name in ('brightness', 'contrast', 'saturation'):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f'augment.{name} must be [low, high] with 0 <= low <= high, '
                                 f'got {getattr(self, name)}')
            object.__setattr__(self, name, (float(low), float(high)))
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f'augment.hue must be in [0, 0.5], got {self.hue}')
        if self.rotation_deg < 0:
            raise ValueError(f'augment.rotation_deg must be >= 0, got {self.rotation_deg}')


@dataclass(frozen=True)
class AugmentParams:
    top: int
    left: int
    crop: int
    angle: float
    brightness: float
    contrast: float
    saturation: float
    hue: float


def draw_params(config: AugmentConfig, size: int, rng: np.random.Generator) -> AugmentParams:
    crop = min(size, int(round(math.sqrt(config.crop_area) * size)))
    return AugmentParams(
        top=int(rng.integers(0, size - crop + 1)), left=int(rng.integers(0, size - crop + 1)),
        crop=crop, angle=float(rng.uniform(-config.rotation_deg, config.rotation_deg)),
        brightness=float(rng.uniform(*config.brightness)),
        contrast=float(rng.uniform(*config.contrast)),
        saturation=float(rng.uniform(*config.saturation)),
        hue=float(rng.uniform(-config.hue, config.hue)))


def test_time_view(images_N_S_S_3: np.ndarray, crop: bool = True) -> np.ndarray:
    """Draw 0: the deployed policy's centre crop (model.preprocess), or nothing."""
    if not crop:
        return images_N_S_S_3
    return np.stack([center_crop_resize(image) for image in images_N_S_S_3])


def apply(images_N_S_S_3: np.ndarray, p: AugmentParams) -> np.ndarray:
    """One parameter set applied to every image (uint8 in, uint8 out)."""
    x = torch.from_numpy(np.ascontiguousarray(images_N_S_S_3)).permute(0, 3, 1, 2).float()
    size = x.shape[-1]
    x = x[:, :, p.top:p.top + p.crop, p.left:p.left + p.crop]
    x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False,
                      antialias=True)
    if p.angle:
        x = _rotate(x, p.angle)
    x = x.clamp(0, 255) / 255.0
    x = (x * p.brightness).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (p.contrast * x + (1 - p.contrast) * mean).clamp(0, 1)
    x = (p.saturation * x + (1 - p.saturation) * _gray(x)).clamp(0, 1)
    if p.hue:
        x = _shift_hue(x, p.hue)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Counter-clockwise about the centre, nearest, zero fill (torchvision.rotate)."""
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    matrix = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype)
    grid = F.affine_grid(matrix[None].expand(len(x), -1, -1), list(x.shape),
                         align_corners=False)
    return F.grid_sample(x, grid, mode='nearest', padding_mode='zeros', align_corners=False)


def _shift_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    r, g, b = x.unbind(1)
    high, _ = x.max(1)
    low, _ = x.min(1)
    delta = high - low
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(high == r, ((g - b) / safe) % 6,
                      torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    saturation = torch.where(high > 0, delta / torch.where(high > 0, high, torch.ones_like(high)),
                             torch.zeros_like(high))
    hue = (hue + shift) % 1.0
    return _hsv_to_rgb(hue, saturation, high)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    sector = torch.floor(h * 6)
    f = h * 6 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = sector.long() % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros(h.shape + (3,), dtype=h.dtype)
    for index, (r, g, b) in enumerate(choices):
        mask = sector == index
        out[mask] = torch.stack([r[mask], g[mask], b[mask]], -1)
    return out.permute(0, 3, 1, 2)


def augmented_view(images_N_S_S_3: np.ndarray, config: AugmentConfig, draw: int,
                   key: tuple) -> np.ndarray:
    """Draw `draw` of the sample identified by `key` (ints): 0 = test-time view, others
    random with parameters seeded by (key, draw)."""
    if draw == 0 or not config.enabled:
        return test_time_view(images_N_S_S_3)
    rng = np.random.default_rng([*map(int, key), int(draw)])
    return apply(images_N_S_S_3, draw_params(config, images_N_S_S_3.shape[1], rng))
