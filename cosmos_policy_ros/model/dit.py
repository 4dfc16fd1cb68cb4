"""The Cosmos-Predict2 video DiT used by Cosmos Policy (MiniTrainDIT + MinimalV1LVGDiT).

Pure PyTorch, written from the architecture description; parameter names match the released
checkpoint minus its 'net.' prefix, so `load_state_dict(strict=True)` takes the 2B weights.

Letters in tensor names: B batch, C channels, T latent frames, H/W latent height/width
(after patching: patch-grid size), S = T*H*W tokens, D model width, N text tokens,
K heads, E head dim.
"""
import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cosmos_policy_ros.model.config import DiTConfig


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * weight, computed in fp32 (TransformerEngine formula)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()
        return y.to(x.dtype)


def _layer_norm(x: Tensor) -> Tensor:
    # int(): a constant width, also when traced for ONNX export with a dynamic batch
    return F.layer_norm(x, (int(x.shape[-1]),), eps=1e-6)


# ---------------------------------------------------------------- rotary position embedding
def rope_split(head_dim: int) -> tuple[int, int, int]:
    """(dim_t, dim_h, dim_w) of the 3D RoPE: h and w get head_dim//6*2 each, t the rest."""
    dim_h = head_dim // 6 * 2
    return head_dim - 2 * dim_h, dim_h, dim_h


def rope_angles(cfg: DiTConfig, T: int, H: int, W: int, device=None) -> Tensor:
    """RoPE angle table [T*H*W, head_dim] in fp32, token order (t, h, w).

    Layout cat([t, h, w] * 2): entry i and i + head_dim/2 share a frequency (rotate-half).
    NTK-scaled bases: theta = 10000 * ratio ** (d / (d - 2)) per axis; integer positions.
    """
    dim_t, dim_h, dim_w = rope_split(cfg.head_dim)

    def half(length: int, dim: int, ratio: float) -> Tensor:
        theta = 10000.0 * ratio ** (dim / (dim - 2))
        exponents = torch.arange(0, dim, 2, device=device)[:dim // 2].float() / dim
        freqs = 1.0 / (theta ** exponents)
        return torch.outer(torch.arange(length, device=device).float(), freqs)

    t = half(T, dim_t, cfg.rope_t_extrapolation_ratio)[:, None, None, :].expand(T, H, W, -1)
    h = half(H, dim_h, cfg.rope_h_extrapolation_ratio)[None, :, None, :].expand(T, H, W, -1)
    w = half(W, dim_w, cfg.rope_w_extrapolation_ratio)[None, None, :, :].expand(T, H, W, -1)
    return torch.cat([t, h, w] * 2, dim=-1).reshape(T * H * W, cfg.head_dim)


@functools.lru_cache(maxsize=32)
def rope_cos_sin(cfg: DiTConfig, T: int, H: int, W: int,
                 device: torch.device) -> tuple[Tensor, Tensor]:
    """Cached real-valued fp32 (cos, sin) tables [S, 1, E]; plain tensors (TensorRT-friendly),
    cached per (config, T, H, W, device) rather than stored on the module."""
    with torch.inference_mode(False), torch.no_grad():  # usable later in training graphs too
        angles = rope_angles(cfg, T, H, W, device=device)[:, None, :]
        return angles.cos(), angles.sin()


def apply_rope(x_B_S_K_E: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Non-interleaved rotate-half RoPE over the whole head dim, in fp32 (as TE's fused
    kernel does), returned in the input dtype."""
    x = x_B_S_K_E.float()
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rotated * sin).to(x_B_S_K_E.dtype)


class RopePositions(nn.Module):
    """Holds the release's persistent RoPE buffers (loaded/saved, never used for compute:
    the tables come from the config, see rope_cos_sin)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim_t, dim_h, _ = rope_split(cfg.head_dim)
        length = max(cfg.max_img_h // cfg.patch_spatial, cfg.max_img_w // cfg.patch_spatial,
                     cfg.max_frames // cfg.patch_temporal)
        self.register_buffer('seq', torch.arange(length, dtype=torch.float))
        self.register_buffer('dim_spatial_range',
                             torch.arange(0, dim_h, 2)[:dim_h // 2].float() / dim_h)
        self.register_buffer('dim_temporal_range',
                             torch.arange(0, dim_t, 2)[:dim_t // 2].float() / dim_t)


# ------------------------------------------------------------------------------ sub-modules
class Attention(nn.Module):
    """Multi-head attention without biases; per-head RMSNorm on q and k; RoPE when given."""

    def __init__(self, dim: int, context_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim)
        self.k_proj = nn.Linear(context_dim, dim, bias=False)
        self.k_norm = RMSNorm(head_dim)
        self.v_proj = nn.Linear(context_dim, dim, bias=False)
        self.output_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x_B_S_D: Tensor, context_B_N_C: Tensor | None = None,
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        context = x_B_S_D if context_B_N_C is None else context_B_N_C
        B, S, D = x_B_S_D.shape
        q = self.q_norm(self.q_proj(x_B_S_D).unflatten(-1, (self.num_heads, -1)))
        k = self.k_norm(self.k_proj(context).unflatten(-1, (self.num_heads, -1)))
        v = self.v_proj(context).unflatten(-1, (self.num_heads, -1))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out_B_K_S_E = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.output_proj(out_B_K_S_E.transpose(1, 2).reshape(B, S, D))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layer1 = nn.Linear(dim, hidden, bias=False)
        self.layer2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer2(F.gelu(self.layer1(x)))


def _adaln(dim: int, lora_dim: int, chunks: int) -> nn.Sequential:
    """SiLU -> low-rank Linear pair; names .1/.2 as released."""
    return nn.Sequential(nn.SiLU(), nn.Linear(dim, lora_dim, bias=False),
                         nn.Linear(lora_dim, chunks * dim, bias=False))


def _per_frame(t_B_T_D: Tensor) -> Tensor:
    return t_B_T_D[:, :, None, :]  # broadcast over the tokens of each latent frame


class Block(nn.Module):
    """Self-attention, cross-attention, MLP; each pre-LayerNorm and AdaLN-LoRA modulated."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim = cfg.model_channels
        self.self_attn = Attention(dim, dim, cfg.num_heads)
        self.cross_attn = Attention(dim, cfg.crossattn_emb_channels, cfg.num_heads)
        self.mlp = FeedForward(dim, cfg.mlp_hidden)
        self.adaln_modulation_self_attn = _adaln(dim, cfg.adaln_lora_dim, 3)
        self.adaln_modulation_cross_attn = _adaln(dim, cfg.adaln_lora_dim, 3)
        self.adaln_modulation_mlp = _adaln(dim, cfg.adaln_lora_dim, 3)

    def forward(self, x_B_T_HW_D: Tensor, emb_B_T_D: Tensor, adaln_lora_B_T_3D: Tensor,
                context_B_N_C: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        B, T, HW, D = x_B_T_HW_D.shape

        def modulation(adaln: nn.Module) -> list[Tensor]:
            out = adaln(emb_B_T_D) + adaln_lora_B_T_3D
            return [_per_frame(m) for m in out.chunk(3, dim=-1)]

        def tokens(x: Tensor) -> Tensor:
            return x.reshape(B, T * HW, D)

        def frames(x: Tensor) -> Tensor:
            return x.reshape(B, T, HW, D)

        shift, scale, gate = modulation(self.adaln_modulation_self_attn)
        h = _layer_norm(x_B_T_HW_D) * (1 + scale) + shift
        x_B_T_HW_D = x_B_T_HW_D + gate * frames(self.self_attn(tokens(h), rope=rope))

        shift, scale, gate = modulation(self.adaln_modulation_cross_attn)
        h = _layer_norm(x_B_T_HW_D) * (1 + scale) + shift
        x_B_T_HW_D = x_B_T_HW_D + gate * frames(self.cross_attn(tokens(h), context_B_N_C))

        shift, scale, gate = modulation(self.adaln_modulation_mlp)
        h = _layer_norm(x_B_T_HW_D) * (1 + scale) + shift
        return x_B_T_HW_D + gate * self.mlp(h)


class Timesteps(nn.Module):
    """Sinusoidal features cat([cos, sin]) of the (per-frame) timestep, fp32."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t_B_T: Tensor) -> Tensor:
        half = self.dim // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32,
                                                   device=t_B_T.device) / half
        angles = t_B_T.float()[..., None] * torch.exp(exponent)
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepEmbedding(nn.Module):
    """linear_1 -> SiLU -> linear_2 (3*D): the shared AdaLN-LoRA term for every block."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(dim, dim, bias=False)
        self.linear_2 = nn.Linear(dim, 3 * dim, bias=False)

    def forward(self, sinusoid: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(sinusoid)))


class PatchEmbed(nn.Module):
    """(B, C, T, H, W) -> (B, T', H', W', C*pt*p*p) with feature order (c, pt, ph, pw)."""

    def __init__(self, patch_temporal: int, patch_spatial: int):
        super().__init__()
        self.pt, self.p = patch_temporal, patch_spatial

    def forward(self, x: Tensor) -> Tensor:
        B, C, T, H, W = x.shape
        pt, p = self.pt, self.p
        x = x.reshape(B, C, T // pt, pt, H // p, p, W // p, p)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, T // pt, H // p, W // p, -1)


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim = cfg.model_channels
        out = cfg.patch_spatial ** 2 * cfg.patch_temporal * cfg.out_channels
        self.linear = nn.Linear(dim, out, bias=False)
        self.adaln_modulation = _adaln(dim, cfg.adaln_lora_dim, 2)

    def forward(self, x_B_T_HW_D: Tensor, emb_B_T_D: Tensor,
                adaln_lora_B_T_3D: Tensor) -> Tensor:
        D = x_B_T_HW_D.shape[-1]
        mod = self.adaln_modulation(emb_B_T_D) + adaln_lora_B_T_3D[..., :2 * D]
        shift, scale = (_per_frame(m) for m in mod.chunk(2, dim=-1))
        return self.linear(_layer_norm(x_B_T_HW_D) * (1 + scale) + shift)


# ------------------------------------------------------------------------------------ model
class DiT(nn.Module):
    """Cosmos-Predict2 DiT with the condition-mask input channel (MinimalV1LVGDiT).

    forward(x, per-frame timesteps, text context, condition mask) -> raw net output
    (velocity in the rectified-flow parametrisation), same shape as x with out_channels.
    """

    def __init__(self, cfg: DiTConfig, activation_checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        # Checkpoint-format training counters of the release; kept so strict loading works.
        for name, value in self.training_counters().items():
            self.register_buffer(name, value)
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Sequential(
            PatchEmbed(cfg.patch_temporal, cfg.patch_spatial),
            nn.Linear(cfg.patch_in_features, cfg.model_channels, bias=False))
        self.pos_embedder = RopePositions(cfg)
        self.t_embedder = nn.Sequential(Timesteps(cfg.model_channels),
                                        TimestepEmbedding(cfg.model_channels))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_blocks))
        self.final_layer = FinalLayer(cfg)
        self.t_embedding_norm = RMSNorm(cfg.model_channels)
        self.activation_checkpointing = activation_checkpointing

    @staticmethod
    def training_counters() -> dict[str, Tensor]:
        return {'accum_video_sample_counter': torch.tensor(0, dtype=torch.long),
                'accum_image_sample_counter': torch.tensor(0, dtype=torch.long),
                'accum_iteration': torch.tensor(0, dtype=torch.long),
                'accum_train_in_hours': torch.tensor(0.0)}

    @staticmethod
    def default_buffers(cfg: DiTConfig) -> dict[str, Tensor]:
        """Values of every state_dict buffer (all deterministic), on the CPU."""
        with torch.device('cpu'):
            rope = {f'pos_embedder.{name}': b for name, b in RopePositions(cfg).named_buffers()}
        return {**DiT.training_counters(), **rope}

    @property
    def dtype(self) -> torch.dtype:
        return self.x_embedder.proj[1].weight.dtype

    def _check_inputs(self, x, timesteps, context, condition_mask, padding_mask) -> None:
        cfg = self.cfg
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f'DiT: x_B_C_T_H_W must be (B, {cfg.in_channels}, T, H, W), '
                             f'got {tuple(x.shape)}')
        B, _, T, H, W = x.shape
        ps, pt = cfg.patch_spatial, cfg.patch_temporal
        if H % ps or W % ps or T % pt:
            raise ValueError(f'DiT: latent T,H,W = {T},{H},{W} must be multiples of the patch '
                             f'sizes ({pt},{ps},{ps}); resize the input')
        if H > cfg.max_img_h or W > cfg.max_img_w or T > cfg.max_frames:
            raise ValueError(f'DiT: latent T,H,W = {T},{H},{W} exceed max_frames/max_img_h/'
                             f'max_img_w = {cfg.max_frames},{cfg.max_img_h},{cfg.max_img_w}')
        if timesteps.shape not in ((B, T // pt), (B,)):
            raise ValueError(f'DiT: timesteps_B_T must be ({B}, {T // pt}) (one per latent '
                             f'frame) or ({B},), got {tuple(timesteps.shape)}')
        if context.ndim != 3 or context.shape[0] != B or \
                context.shape[2] != cfg.crossattn_emb_channels:
            raise ValueError(f'DiT: crossattn_emb_B_N_D must be ({B}, N, '
                             f'{cfg.crossattn_emb_channels}), got {tuple(context.shape)}')
        if condition_mask.shape != (B, 1, T, H, W):
            raise ValueError(f'DiT: condition_mask_B_1_T_H_W must be {(B, 1, T, H, W)}, '
                             f'got {tuple(condition_mask.shape)}')
        if padding_mask is not None and (padding_mask.ndim != 4
                                         or padding_mask.shape[:2] != (B, 1)):
            raise ValueError(f'DiT: padding_mask_B_1_H_W must be ({B}, 1, H, W), '
                             f'got {tuple(padding_mask.shape)}')

    def prepare_embedded_sequence(self, x_B_C_T_H_W: Tensor, condition_mask_B_1_T_H_W: Tensor,
                                  padding_mask_B_1_H_W: Tensor | None) -> Tensor:
        """Concatenate the mask channels and patch-embed -> x_B_T_H_W_D."""
        B, _, T, H, W = x_B_C_T_H_W.shape
        channels = [x_B_C_T_H_W, condition_mask_B_1_T_H_W.to(x_B_C_T_H_W.dtype)]
        if self.cfg.concat_padding_mask:
            if padding_mask_B_1_H_W is None:
                padding = x_B_C_T_H_W.new_zeros(B, 1, H, W)
            else:
                padding = padding_mask_B_1_H_W.to(x_B_C_T_H_W.dtype)
                if padding.shape[-2:] != (H, W):
                    padding = F.interpolate(padding, size=(H, W), mode='nearest')
            channels.append(padding[:, :, None].expand(B, 1, T, H, W))
        return self.x_embedder.proj(torch.cat(channels, dim=1))

    def unpatchify(self, x_B_T_H_W_M: Tensor) -> Tensor:
        """Inverse patching; output features are ordered (p_h, p_w, p_t, C)."""
        B, T, H, W, _ = x_B_T_H_W_M.shape
        p, pt = self.cfg.patch_spatial, self.cfg.patch_temporal
        x = x_B_T_H_W_M.reshape(B, T, H, W, p, p, pt, -1)
        x = x.permute(0, 7, 1, 6, 2, 4, 3, 5)  # B C T pt H p W p
        return x.reshape(B, -1, T * pt, H * p, W * p)

    def embed_timesteps(self, timesteps_B_T: Tensor) -> tuple[Tensor, Tensor]:
        """(emb_B_T_D, adaln_lora_B_T_3D) in the model dtype.

        As the reference (video2world denoise casts c_noise to the model precision; Timesteps
        computes in fp32 and returns the input dtype): the timestep and its sinusoid are
        rounded to the model dtype before the norm and the AdaLN-LoRA MLP. In float32 this is
        exact; in bf16 it moves the net output by about as much as bf16 itself does
        (benchmarks/bf16_timesteps.py measures both choices against float32)."""
        dtype = self.dtype
        sinusoid_B_T_D = self.t_embedder[0](timesteps_B_T.to(dtype)).to(dtype)
        return self.t_embedding_norm(sinusoid_B_T_D), self.t_embedder[1](sinusoid_B_T_D)

    def forward(self, x_B_C_T_H_W: Tensor, timesteps_B_T: Tensor, crossattn_emb_B_N_D: Tensor,
                condition_mask_B_1_T_H_W: Tensor,
                padding_mask_B_1_H_W: Tensor | None = None) -> Tensor:
        self._check_inputs(x_B_C_T_H_W, timesteps_B_T, crossattn_emb_B_N_D,
                           condition_mask_B_1_T_H_W, padding_mask_B_1_H_W)
        dtype = self.dtype
        x_B_T_H_W_D = self.prepare_embedded_sequence(
            x_B_C_T_H_W.to(dtype), condition_mask_B_1_T_H_W, padding_mask_B_1_H_W)
        B, T, H, W, D = x_B_T_H_W_D.shape
        rope = rope_cos_sin(self.cfg, T, H, W, x_B_T_H_W_D.device)

        if timesteps_B_T.ndim == 1:
            timesteps_B_T = timesteps_B_T[:, None]
        emb_B_T_D, adaln_lora_B_T_3D = self.embed_timesteps(timesteps_B_T)
        context = crossattn_emb_B_N_D.to(dtype)

        x_B_T_HW_D = x_B_T_H_W_D.reshape(B, T, H * W, D)
        for block in self.blocks:
            args = (x_B_T_HW_D, emb_B_T_D, adaln_lora_B_T_3D, context, rope)
            if self.activation_checkpointing and torch.is_grad_enabled():
                x_B_T_HW_D = checkpoint(block, *args, use_reentrant=False)
            else:
                x_B_T_HW_D = block(*args)
        out = self.final_layer(x_B_T_HW_D, emb_B_T_D, adaln_lora_B_T_3D)
        return self.unpatchify(out.reshape(B, T, H, W, -1))
