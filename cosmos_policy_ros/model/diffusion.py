"""Rectified-flow preconditioning in EDM sigma space, training noise and the training loss.

Reference: shared/reference/cosmos_policy.md §4. With t = sigma / (1 + sigma) the network F
predicts the velocity eps - x0 and x0 = (1 - t) * x_sigma - t * F(c_in * x_sigma, t).
Conditioning frames are clean (sigma = 0, so t = 0) and overwritten with the ground truth in
x0, so they carry no loss.

Shape letters: B batch, C channels, T latent frames, H/W latent size, N text tokens, D width.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

# net(x_B_C_T_H_W, timesteps_B_T, crossattn_emb_B_N_D, condition_mask_B_1_T_H_W) -> F
VelocityNet = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

LOSS_SCALE = 10.0


def rectified_flow_scaling(sigma: torch.Tensor):
    """(c_skip, c_out, c_in, c_noise) for sigma (any shape), sigma_data = 1."""
    t = sigma / (1 + sigma)
    return 1 - t, -t, 1 - t, t


@dataclass
class Conditioning:
    """What the denoiser needs besides the noisy latent.

    gt_B_C_T_H_W: clean latents; frames where mask_B_T is True are given to the net clean.
    crossattn_emb_B_N_D: text embeddings.
    """
    gt_B_C_T_H_W: torch.Tensor
    mask_B_T: torch.Tensor
    crossattn_emb_B_N_D: torch.Tensor

    def __post_init__(self):
        batch, _, frames = self.gt_B_C_T_H_W.shape[:3]
        if tuple(self.mask_B_T.shape) != (batch, frames):
            raise ValueError(f'Conditioning.mask_B_T: expected shape {(batch, frames)} to match '
                             f'gt_B_C_T_H_W {tuple(self.gt_B_C_T_H_W.shape)}, got '
                             f'{tuple(self.mask_B_T.shape)}')
        if self.crossattn_emb_B_N_D.shape[0] != batch:
            raise ValueError(f'Conditioning.crossattn_emb_B_N_D: batch '
                             f'{self.crossattn_emb_B_N_D.shape[0]} != latent batch {batch}')
        self.mask_B_T = self.mask_B_T.to(torch.bool)


def denoise(net: VelocityNet, x_sigma_B_C_T_H_W: torch.Tensor, sigma_B: torch.Tensor,
            condition: Conditioning) -> torch.Tensor:
    """x0 prediction; conditioning frames are fed clean at t=0 and returned as ground truth."""
    dtype = x_sigma_B_C_T_H_W.dtype
    mask_B_1_T_1_1 = condition.mask_B_T[:, None, :, None, None]
    gt = condition.gt_B_C_T_H_W.to(dtype)
    x_B_C_T_H_W = torch.where(mask_B_1_T_1_1, gt, x_sigma_B_C_T_H_W)
    sigma_B_T = torch.where(condition.mask_B_T, torch.zeros_like(condition.mask_B_T, dtype=dtype),
                            sigma_B.to(dtype)[:, None])
    c_skip, c_out, c_in, c_noise_B_T = rectified_flow_scaling(sigma_B_T)

    def per_frame(c):
        return c[:, None, :, None, None]

    mask_B_1_T_H_W = mask_B_1_T_1_1.to(dtype).expand(-1, 1, -1, *x_B_C_T_H_W.shape[3:])
    velocity = net(x_B_C_T_H_W * per_frame(c_in), c_noise_B_T, condition.crossattn_emb_B_N_D,
                   mask_B_1_T_H_W)
    x0_B_C_T_H_W = per_frame(c_skip) * x_B_C_T_H_W + per_frame(c_out) * velocity.to(dtype)
    return torch.where(mask_B_1_T_1_1, gt, x0_B_C_T_H_W)


@dataclass(frozen=True)
class TrainingNoise:
    """Hybrid EDM sigma distribution: lognormal(ln 4, 1.2) w.p. 0.7, else U[1, 85].

    scale_by_sqrt_frames multiplies by sqrt(latent frames), as the released code does
    (`adjust_video_noise`; a code fact the paper does not mention).
    """
    p_mean: float = math.log(4.0)
    p_std: float = 1.2
    uniform_prob: float = 0.3
    uniform_min: float = 1.0
    uniform_max: float = 85.0
    scale_by_sqrt_frames: bool = True

    def __post_init__(self):
        if not 0.0 <= self.uniform_prob <= 1.0:
            raise ValueError(f'TrainingNoise.uniform_prob must be in [0,1], got '
                             f'{self.uniform_prob}')
        if not 0.0 < self.uniform_min < self.uniform_max:
            raise ValueError('TrainingNoise.uniform_min/uniform_max: need 0 < min < max, got '
                             f'{self.uniform_min}, {self.uniform_max}')
        if self.p_std <= 0:
            raise ValueError(f'TrainingNoise.p_std must be > 0, got {self.p_std}')

    def sample(self, batch: int, num_frames: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One sigma per sample (shared by its frames): B float32."""
        lognormal = torch.exp(self.p_mean + self.p_std * torch.randn(batch, generator=generator))
        uniform = self.uniform_min + (self.uniform_max - self.uniform_min) * torch.rand(
            batch, generator=generator)
        pick_uniform = torch.rand(batch, generator=generator) < self.uniform_prob
        sigma = torch.where(pick_uniform, uniform, lognormal)
        if self.scale_by_sqrt_frames:
            sigma = sigma * math.sqrt(num_frames)
        return sigma


def add_noise(x0_B_C_T_H_W: torch.Tensor, sigma_B: torch.Tensor,
              noise_B_C_T_H_W: torch.Tensor) -> torch.Tensor:
    """x_sigma = x0 + sigma * eps (EDM / variance-exploding form)."""
    return x0_B_C_T_H_W + sigma_B.to(x0_B_C_T_H_W)[:, None, None, None, None] * noise_B_C_T_H_W


def diffusion_loss(x0_B_C_T_H_W: torch.Tensor, x0_pred_B_C_T_H_W: torch.Tensor,
                   sigma_B: torch.Tensor, loss_mask_B_T: torch.Tensor | None = None,
                   loss_scale: float = LOSS_SCALE, per_sample: bool = False) -> torch.Tensor:
    """mean((x0 - x0_pred)^2 * (1+sigma)^2 / sigma^2) * loss_scale (= velocity MSE * 10).

    loss_mask_B_T multiplies the per-element loss before the mean over all elements, as the
    reference does (so a masked loss is not renormalised by the number of kept frames).
    per_sample returns the (B,) means instead (their mean is the scalar loss).
    """
    weight_B = ((1 + sigma_B) / sigma_B) ** 2
    loss = (x0_B_C_T_H_W - x0_pred_B_C_T_H_W).float() ** 2 * weight_B.float()[:, None, None,
                                                                              None, None]
    if loss_mask_B_T is not None:
        loss = loss * loss_mask_B_T.to(loss)[:, None, :, None, None]
    if per_sample:
        return loss.flatten(1).mean(1) * loss_scale
    return loss.mean() * loss_scale
