"""Latent frame layout: which latent frame holds what, and how vectors are written into frames.

Cosmos Policy packs every modality into one latent video (shared/reference/cosmos_policy.md §3):
images are VAE-encoded, while proprio, the action chunk and the value are written straight
into "blank" latent frames by tiling their values over the frame's C*H*W elements, and read
back by averaging the full copies. The layout below is data; everything else asks it.

Shape letters: B batch, C latent channels, T latent frames, H/W latent height/width,
P pixel frames.
"""
import enum
import math
from dataclasses import dataclass

import numpy as np
import torch

from cosmos_policy_ros.model.vae import pixel_frames

# The VAE's compression (Wan2.1): first pixel frame alone, then 4 pixel frames per latent frame.
TEMPORAL_COMPRESSION = 4
SPATIAL_COMPRESSION = 8
LATENT_CHANNELS = 16


class LayoutError(ValueError):
    """A vector does not fit a latent frame, or a layout/role is used inconsistently."""


class Role(str, enum.Enum):
    BLANK = 'blank'
    PROPRIO = 'proprio'
    LEFT_WRIST = 'left_wrist'
    RIGHT_WRIST = 'right_wrist'
    WRIST = 'wrist'
    PRIMARY = 'primary'
    ACTION = 'action'
    FUTURE_PROPRIO = 'future_proprio'
    FUTURE_LEFT_WRIST = 'future_left_wrist'
    FUTURE_RIGHT_WRIST = 'future_right_wrist'
    FUTURE_WRIST = 'future_wrist'
    FUTURE_PRIMARY = 'future_primary'
    VALUE = 'value'


class SampleKind(str, enum.Enum):
    """What a sample asks the model for (§5): p(a,s',V|s), p(s',V|s,a), p(V|s,a,s')."""
    POLICY = 'policy'
    WORLD_MODEL = 'world_model'
    VALUE = 'value'


class ValueMode(str, enum.Enum):
    """Value sample variants (§5): V(s,a,s') default, V(s') masks s and a, Q(s,a) masks s'."""
    V_SAS = 'v_sas'
    V_SPRIME = 'v_sprime'
    Q_SA = 'q_sa'


# Frames written by injection rather than VAE encoding (they hold blank images in pixel space).
INJECTED_ROLES = (Role.BLANK, Role.PROPRIO, Role.ACTION, Role.FUTURE_PROPRIO, Role.VALUE)
_CURRENT_STATE = (Role.PROPRIO, Role.LEFT_WRIST, Role.RIGHT_WRIST, Role.WRIST, Role.PRIMARY)
_FUTURE_STATE = (Role.FUTURE_PROPRIO, Role.FUTURE_LEFT_WRIST, Role.FUTURE_RIGHT_WRIST,
                 Role.FUTURE_WRIST, Role.FUTURE_PRIMARY)


@dataclass(frozen=True)
class LatentLayout:
    """Frame roles in latent order plus the camera shown by each image role."""
    name: str
    roles: tuple[Role, ...]
    cameras: dict  # Role -> camera name, for current and future image roles

    def __post_init__(self):
        if not self.roles or self.roles[0] is not Role.BLANK:
            raise LayoutError(f'layout {self.name!r}: roles must start with Role.BLANK (the '
                              f'single-pixel-frame latent frame), got {self.roles[:1]}')
        if len(set(self.roles)) != len(self.roles):
            raise LayoutError(f'layout {self.name!r}: roles must be unique, got {self.roles}')
        for role in (Role.PROPRIO, Role.ACTION, Role.FUTURE_PROPRIO, Role.VALUE):
            if role not in self.roles:
                raise LayoutError(f'layout {self.name!r}: roles lack {role.value!r}')
        for role in self.roles:
            if role not in INJECTED_ROLES and role not in self.cameras:
                raise LayoutError(f'layout {self.name!r}: image role {role.value!r} has no '
                                  'camera in `cameras`')

    @property
    def num_frames(self) -> int:
        return len(self.roles)

    @property
    def num_pixel_frames(self) -> int:
        return pixel_frames(self.num_frames)

    def index(self, role: Role) -> int:
        try:
            return self.roles.index(role)
        except ValueError:
            raise LayoutError(f'layout {self.name!r} has no {Role(role).value!r} frame; roles: '
                              f'{[r.value for r in self.roles]}') from None

    def indices(self, roles) -> tuple[int, ...]:
        return tuple(i for i, role in enumerate(self.roles) if role in roles)

    @property
    def current_cameras(self) -> tuple[str, ...]:
        return tuple(self.cameras[r] for r in self.roles if r in _CURRENT_STATE and
                     r in self.cameras)

    @property
    def num_condition_frames_policy(self) -> int:
        """Length of the policy's conditioning prefix (blank, proprio, current images)."""
        return self.index(Role.ACTION)

    def condition_frames(self, kind: SampleKind, value_mode: ValueMode = ValueMode.V_SAS
                         ) -> tuple[int, ...]:
        """Latent frames given clean to the model for one sample kind (§5)."""
        kind, value_mode = SampleKind(kind), ValueMode(value_mode)
        prefix = tuple(range(self.num_condition_frames_policy))
        if kind is SampleKind.POLICY:
            return prefix
        if kind is SampleKind.WORLD_MODEL:
            return prefix + (self.index(Role.ACTION),)
        frames = [i for i, role in enumerate(self.roles) if role is not Role.VALUE]
        if value_mode is ValueMode.V_SPRIME:
            frames = [i for i in frames if self.roles[i] not in _CURRENT_STATE + (Role.ACTION,)]
        elif value_mode is ValueMode.Q_SA:
            frames = [i for i in frames if self.roles[i] not in _FUTURE_STATE]
        return tuple(frames)

    def condition_mask(self, kind: SampleKind, value_mode: ValueMode = ValueMode.V_SAS
                       ) -> np.ndarray:
        """(T,) bool, True where the frame is conditioning."""
        mask = np.zeros(self.num_frames, dtype=bool)
        mask[list(self.condition_frames(kind, value_mode))] = True
        return mask

    def loss_mask(self, kind: SampleKind, value_mode: ValueMode = ValueMode.V_SAS) -> np.ndarray:
        """(T,) float: 1 where the loss counts. Masked value variants train the value frame only
        (the reference restricts their loss because the masked frames are not conditioning)."""
        kind, value_mode = SampleKind(kind), ValueMode(value_mode)
        if kind is SampleKind.VALUE and value_mode is not ValueMode.V_SAS:
            mask = np.zeros(self.num_frames, dtype=np.float32)
            mask[self.index(Role.VALUE)] = 1.0
            return mask
        return np.ones(self.num_frames, dtype=np.float32)


ALOHA_LAYOUT = LatentLayout(
    name='aloha',
    roles=(Role.BLANK, Role.PROPRIO, Role.LEFT_WRIST, Role.RIGHT_WRIST, Role.PRIMARY, Role.ACTION,
           Role.FUTURE_PROPRIO, Role.FUTURE_LEFT_WRIST, Role.FUTURE_RIGHT_WRIST,
           Role.FUTURE_PRIMARY, Role.VALUE),
    cameras={Role.LEFT_WRIST: 'cam_left_wrist', Role.RIGHT_WRIST: 'cam_right_wrist',
             Role.PRIMARY: 'cam_high', Role.FUTURE_LEFT_WRIST: 'cam_left_wrist',
             Role.FUTURE_RIGHT_WRIST: 'cam_right_wrist', Role.FUTURE_PRIMARY: 'cam_high'})

LIBERO_LAYOUT = LatentLayout(
    name='libero',
    roles=(Role.BLANK, Role.PROPRIO, Role.WRIST, Role.PRIMARY, Role.ACTION, Role.FUTURE_PROPRIO,
           Role.FUTURE_WRIST, Role.FUTURE_PRIMARY, Role.VALUE),
    cameras={Role.WRIST: 'wrist', Role.PRIMARY: 'primary', Role.FUTURE_WRIST: 'wrist',
             Role.FUTURE_PRIMARY: 'primary'})

LAYOUTS = {layout.name: layout for layout in (ALOHA_LAYOUT, LIBERO_LAYOUT)}


def build_pixel_sequence(layout: LatentLayout, images: dict, future_images: dict | None = None,
                         num_latent_frames: int | None = None) -> torch.Tensor:
    """Pixel video B,3,P,H,W in [-1,1] for the VAE.

    images / future_images: camera -> B,3,H,W tensors in [-1,1]. Injected frames hold a black
    image (uint8 zeros -> -1, as the reference's blank frames). Future images default to the
    current ones (at inference they are generated; the placeholders only feed the VAE).
    `num_latent_frames` builds only the first frames (the conditioning prefix: causal VAE).
    """
    future_images = images if future_images is None else future_images
    first = next(iter(images.values()))
    blank = torch.full_like(first, -1.0)
    count = layout.num_frames if num_latent_frames is None else num_latent_frames
    frames = []
    for i, role in enumerate(layout.roles[:count]):
        if role in INJECTED_ROLES:
            picture = blank
        else:
            is_future = role in _FUTURE_STATE
            source = future_images if is_future else images
            camera = layout.cameras[role]
            if camera not in source:
                raise LayoutError(f'{"future_images" if is_future else "images"} lacks camera '
                                  f'{camera!r} (needed for the {role.value!r} frame); given: '
                                  f'{sorted(source)}')
            picture = source[camera]
        copies = 1 if i == 0 else TEMPORAL_COMPRESSION
        frames.extend([picture] * copies)
    return torch.stack(frames, dim=2)


def check_fits(num_values: int, frame_shape: tuple[int, int, int], what: str) -> None:
    """Raise a clear error when `num_values` do not fit one latent frame of C,H,W."""
    channels, height, width = frame_shape
    frame_numel = channels * height * width
    if num_values > frame_numel:
        side = math.ceil(math.sqrt(num_values / channels))
        raise LayoutError(
            f'{what} has {num_values} values but a latent frame holds only {channels}x{height}x'
            f'{width}={frame_numel}; use an image size of at least {side * SPATIAL_COMPRESSION} '
            f'px (latent {side}x{side}) in the model preset, or a shorter chunk')


def inject(latent_B_C_T_H_W: torch.Tensor, frame: int, values_B_K: torch.Tensor,
           what: str = 'vector') -> torch.Tensor:
    """Write values into one latent frame: frame.flatten()[i] = values[i mod K] (row-major)."""
    batch, channels, _, height, width = latent_B_C_T_H_W.shape
    values_B_K = values_B_K.reshape(batch, -1).to(latent_B_C_T_H_W)
    num_values = values_B_K.shape[1]
    check_fits(num_values, (channels, height, width), what)
    frame_numel = channels * height * width
    repeats = -(-frame_numel // num_values)
    tiled_B_N = values_B_K.repeat(1, repeats)[:, :frame_numel]
    out = latent_B_C_T_H_W.clone()
    out[:, :, frame] = tiled_B_N.reshape(batch, channels, height, width)
    return out


def read_back(latent_B_C_T_H_W: torch.Tensor, frame: int, num_values: int,
              what: str = 'vector') -> torch.Tensor:
    """Mean over the full copies only (the truncated tail copy is ignored): B,K."""
    batch, channels, _, height, width = latent_B_C_T_H_W.shape
    check_fits(num_values, (channels, height, width), what)
    full_copies = (channels * height * width) // num_values
    flat_B_N = latent_B_C_T_H_W[:, :, frame].reshape(batch, -1)
    return flat_B_N[:, :full_copies * num_values].reshape(batch, full_copies, num_values).mean(1)


def inject_value(latent_B_C_T_H_W: torch.Tensor, frame: int,
                 value_B: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar in [-1,1] over the whole frame."""
    out = latent_B_C_T_H_W.clone()
    out[:, :, frame] = value_B.reshape(-1, 1, 1, 1).to(out)
    return out


def read_value(latent_B_C_T_H_W: torch.Tensor, frame: int) -> torch.Tensor:
    """Frame mean mapped from [-1,1] to [0,1] and clamped: B."""
    mean_B = latent_B_C_T_H_W[:, :, frame].flatten(1).mean(1)
    return ((mean_B + 1) / 2).clamp(0.0, 1.0)
