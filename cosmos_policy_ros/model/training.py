"""Training: latent sequences from batches, masks per sample kind, the loss and one step.

Reference §4-§5. A batch mixes policy samples (frames 0-4 conditioning), world-model samples
(+ the action frame) and value samples (all but the value frame; V(s') additionally treats
frames 1-5 as generated, Q(s,a) frames 6-9, and both restrict the loss to the value frame).
Images are VAE-encoded as one 41-frame video; proprio, actions and value are then injected.

Shape letters: B batch, C latent channels, T latent frames, H/W size, N tokens, D width.
"""
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.diffusion import (
    Conditioning,
    TrainingNoise,
    add_noise,
    denoise,
    diffusion_loss,
)
from cosmos_policy_ros.model.layout import LatentLayout, Role, SampleKind, ValueMode


@dataclass
class TrainBatch:
    """One batch in model units: images float B,3,H,W in [-1,1] (already preprocessed),
    proprio/actions/future_proprio min-max normalised to [-1,1], value target in [-1,1]."""
    images: dict
    proprio: torch.Tensor            # B,14
    actions: torch.Tensor            # B,chunk,14
    future_proprio: torch.Tensor     # B,14
    future_images: dict
    value: torch.Tensor              # B
    text_emb: torch.Tensor           # B,N,D
    kinds: Sequence[SampleKind] = field(default_factory=list)   # per sample; default policy

    def __post_init__(self):
        batch = self.proprio.shape[0]
        if not self.kinds:
            self.kinds = [SampleKind.POLICY] * batch
        self.kinds = [SampleKind(kind) for kind in self.kinds]
        checks = {'actions': (self.actions, 3), 'future_proprio': (self.future_proprio, 2),
                  'value': (self.value, 1), 'text_emb': (self.text_emb, 3)}
        for name, (tensor, ndim) in checks.items():
            if tensor.dim() != ndim or tensor.shape[0] != batch:
                raise ValueError(f'TrainBatch.{name}: expected {ndim} dims with batch {batch} '
                                 f'(as proprio), got shape {tuple(tensor.shape)}')
        if len(self.kinds) != batch:
            raise ValueError(f'TrainBatch.kinds: need one SampleKind per sample ({batch}), got '
                             f'{len(self.kinds)}')
        for name in ('proprio', 'actions', 'future_proprio', 'value'):
            tensor = getattr(self, name)
            if not torch.isfinite(tensor).all() or tensor.abs().max() > 1.5:
                raise ValueError(f'TrainBatch.{name} must be finite and normalised to [-1,1] '
                                 '(normalise with the dataset statistics first)')


def inject_state(layout: LatentLayout, latent_B_C_T_H_W: torch.Tensor, proprio_B_K=None,
                 actions_B_L_K=None, future_proprio_B_K=None, value_B=None) -> torch.Tensor:
    """Write the non-image modalities into their frames (any of them may be None)."""
    out = latent_B_C_T_H_W
    for role, values, what in ((Role.PROPRIO, proprio_B_K, 'proprio'),
                               (Role.ACTION, actions_B_L_K, 'action chunk'),
                               (Role.FUTURE_PROPRIO, future_proprio_B_K, 'future proprio')):
        if values is not None:
            out = L.inject(out, layout.index(role), values.reshape(values.shape[0], -1), what)
    if value_B is not None:
        out = L.inject_value(out, layout.index(Role.VALUE), value_B)
    return out


def encode_batch(vae, layout: LatentLayout, batch: TrainBatch) -> torch.Tensor:
    """Clean target latents x0: VAE encode of the full pixel video, then injection."""
    video = L.build_pixel_sequence(layout, batch.images, batch.future_images)
    vae_dtype = next(vae.parameters()).dtype if hasattr(vae, 'parameters') else torch.float32
    with torch.no_grad():
        latent = vae.encode(video.to(vae_dtype)).float()
    return inject_state(layout, latent, batch.proprio, batch.actions, batch.future_proprio,
                        batch.value)


def masks_for(layout: LatentLayout, kinds: Sequence[SampleKind],
              value_mode: ValueMode = ValueMode.V_SAS,
              action_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """condition_mask_B_T (bool) and loss_mask_B_T (float) for per-sample kinds; the action
    frame's loss is multiplied by action_weight where it is generated (1.0: the reference)."""
    cond = np.stack([layout.condition_mask(kind, value_mode) for kind in kinds])
    loss = np.stack([layout.loss_mask(kind, value_mode) for kind in kinds])
    action = layout.index(Role.ACTION)
    loss[:, action] = np.where(cond[:, action], loss[:, action], loss[:, action] * action_weight)
    return torch.from_numpy(cond), torch.from_numpy(loss)


def diffusion_training_loss(net, x0_B_C_T_H_W: torch.Tensor, text_emb_B_N_D: torch.Tensor,
                            condition_mask_B_T: torch.Tensor, loss_mask_B_T: torch.Tensor,
                            noise: TrainingNoise = TrainingNoise(),
                            generator: torch.Generator | None = None,
                            use_loss_mask: bool = True, sigma_B: torch.Tensor | None = None,
                            eps_B_C_T_H_W: torch.Tensor | None = None,
                            per_sample: bool = False):
    """(loss, sigma_B): noise x0 at one sigma per sample, predict x0, weighted MSE.
    sigma_B / eps_B_C_T_H_W, when given, replace the draws from `generator` (a data-parallel
    rank passes its rows of the global batch's draws)."""
    batch, frames = x0_B_C_T_H_W.shape[0], x0_B_C_T_H_W.shape[2]
    if sigma_B is None:
        sigma_B = noise.sample(batch, frames, generator)
    if eps_B_C_T_H_W is None:
        eps_B_C_T_H_W = torch.randn(x0_B_C_T_H_W.shape, generator=generator)
    sigma_B = sigma_B.to(x0_B_C_T_H_W.device)
    eps = eps_B_C_T_H_W.to(x0_B_C_T_H_W)
    x_sigma = add_noise(x0_B_C_T_H_W, sigma_B, eps)
    condition = Conditioning(x0_B_C_T_H_W, condition_mask_B_T.to(x0_B_C_T_H_W.device),
                             text_emb_B_N_D.to(x0_B_C_T_H_W.device))
    x0_pred = denoise(net, x_sigma, sigma_B, condition)
    mask = loss_mask_B_T.to(x0_B_C_T_H_W.device) if use_loss_mask else None
    return diffusion_loss(x0_B_C_T_H_W, x0_pred, sigma_B, mask, per_sample=per_sample), sigma_B


def value_targets(episode_length: int, reward: float = 1.0, gamma: float = 0.998) -> np.ndarray:
    """Monte-Carlo returns G_t = gamma^(T-1-t) * R rescaled to [-1,1]: 2G/R - 1 if R > 0
    (so partial scores map like success, as the reference does) else 2G - 1 (= -1)."""
    if episode_length < 1:
        raise ValueError(f'episode_length must be >= 1, got {episode_length}')
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f'gamma must be in (0, 1], got {gamma}')
    steps = np.arange(episode_length)
    returns = gamma ** (episode_length - 1 - steps) * reward
    scaled = 2.0 * returns / reward - 1.0 if reward > 0 else 2.0 * returns - 1.0
    return scaled.astype(np.float32)


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    sigma: torch.Tensor


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
               x0_B_C_T_H_W: torch.Tensor, text_emb_B_N_D: torch.Tensor,
               kinds: Sequence[SampleKind], layout: LatentLayout = L.ALOHA_LAYOUT,
               value_mode: ValueMode = ValueMode.V_SAS, noise: TrainingNoise = TrainingNoise(),
               generator: torch.Generator | None = None, grad_clip: float = 1.0,
               scheduler=None) -> StepResult:
    """One optimiser step on pre-encoded latents (encode once with `encode_batch`)."""
    net.train()
    cond, loss_mask = masks_for(layout, kinds, value_mode)
    loss, sigma = diffusion_training_loss(net, x0_B_C_T_H_W, text_emb_B_N_D, cond, loss_mask,
                                          noise, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return StepResult(float(loss.detach()), float(grad_norm), sigma)


def make_optimizer(net: torch.nn.Module, lr: float = 1e-4, weight_decay: float = 0.1,
                   ) -> torch.optim.Optimizer:
    """AdamW as released (betas 0.9/0.99, eps 1e-8, weight decay 0.1)."""
    return torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-8,
                             weight_decay=weight_decay)
