"""The Wan2.1 causal video VAE (the Cosmos-Predict2 / Cosmos Policy tokenizer).

Pure PyTorch, written from the architecture description; parameter names equal the keys of
the released tokenizer.pth. Video is encoded causally: the first frame alone, then chunks of
`temporal_window` frames; each temporal convolution carries its last input frames from one
chunk to the next in an explicit `ChunkCache`, so a prefix of a video encodes exactly like the
prefix of the whole video. Decoding runs one latent frame at a time the same way.

Letters: B batch, C channels, T frames, H/W height/width.
"""
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosmos_policy_ros.model.config import VAEConfig

ChunkCache = dict  # module -> its state carried to the next chunk (tail frames / first flag)
_FOLD_MAX_CHANNELS = 48  # CPU: narrower temporal convs run as a Conv2d (see _folded_conv2d)


def latent_frames(num_pixel_frames: int) -> int:
    """Latent frames for a clip: 1 + (T-1)//4 (first frame alone, then 4 per latent)."""
    if num_pixel_frames < 1 or (num_pixel_frames - 1) % 4:
        raise ValueError(f'num_pixel_frames must be 1 + 4k (1, 5, 9, ..., 41), '
                         f'got {num_pixel_frames}')
    return 1 + (num_pixel_frames - 1) // 4


def pixel_frames(num_latent_frames: int) -> int:
    """Pixel frames decoded from a latent clip: 4(T'-1) + 1."""
    if num_latent_frames < 1:
        raise ValueError(f'num_latent_frames must be >= 1, got {num_latent_frames}')
    return 4 * (num_latent_frames - 1) + 1


class CausalConv3d(nn.Conv3d):
    """Conv3d padded only into the past along time; with a cache, the past is the previous
    chunk's last frames instead of zeros (equal to running on the concatenated video)."""

    def __init__(self, in_dim: int, out_dim: int, kernel, stride=1, padding=(0, 0, 0)):
        super().__init__(in_dim, out_dim, kernel, stride=stride)
        pad_t, pad_h, pad_w = padding
        self.past_frames = 2 * pad_t
        self.spatial_pad = (pad_w, pad_w, pad_h, pad_h)

    def forward(self, x: Tensor, cache: ChunkCache | None = None) -> Tensor:
        past = 0
        if cache is not None and self.past_frames:
            previous = cache.get(self)
            if previous is not None:
                x = torch.cat([previous, x], dim=2)
                past = previous.shape[2]
            cache[self] = x[:, :, -self.past_frames:].clone()  # a copy frees the chunk
        x = F.pad(x, (*self.spatial_pad, self.past_frames - past, 0))
        if x.device.type == 'cpu' and self.in_channels <= _FOLD_MAX_CHANNELS and \
                self.kernel_size[0] > 1 and self.stride == (1, 1, 1):
            return self._folded_conv2d(x)
        return super().forward(x)

    def _folded_conv2d(self, x: Tensor) -> Tensor:
        """The same convolution as one Conv2d over frames with the kt taps stacked as
        channels: PyTorch's CPU Conv3d is 3-5x slower than Conv2d for narrow layers."""
        B, C, T, H, W = x.shape
        kt = self.kernel_size[0]
        out_t = T - kt + 1
        taps = torch.cat([x[:, :, k:k + out_t] for k in range(kt)], dim=1)  # B, kt*C, T', H, W
        # widths from the module, not the input: constant under ONNX tracing
        width = kt * self.in_channels
        taps = taps.transpose(1, 2).reshape(B * out_t, width, H, W)
        weight = self.weight.transpose(1, 2).reshape(self.out_channels, width,
                                                     *self.kernel_size[1:])
        y = F.conv2d(taps, weight, self.bias)
        # reshape, not unflatten: ONNX export needs no constant batch for reshape
        return y.reshape(B, out_t, *y.shape[1:]).transpose(1, 2)


class RMSNorm(nn.Module):
    """Channel-first L2 normalisation * sqrt(C) * gamma (Wan's RMS_norm, no bias)."""

    def __init__(self, dim: int, spatial_dims: int = 3):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim, *(1,) * spatial_dims))

    def forward(self, x: Tensor) -> Tensor:
        # = F.normalize(x, dim=1), whose vector_norm over the strided channel dim is ~10x
        # slower on CPU than this sum of squares.
        norm = x.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        return x / norm * self.scale * self.gamma


def _per_frame_2d(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a 2D module to every frame of (B, C, T, H, W)."""
    B, _, T = x.shape[:3]
    y = module(x.transpose(1, 2).flatten(0, 1))
    return y.reshape(B, T, *y.shape[1:]).transpose(1, 2)


class NearestUpsample2x(nn.Module):
    def forward(self, x: Tensor) -> Tensor:  # fp32 because nearest lacks some bf16 kernels
        # 'nearest' = 'nearest-exact' at an integer scale (source pixel dst // 2), and it
        # exports to ONNX
        return F.interpolate(x.float(), scale_factor=2.0, mode='nearest').to(x.dtype)


class Resample(nn.Module):
    """2x spatial down/upsampling, optionally with 2x causal temporal down/upsampling.

    Temporal rules of the release: the first chunk passes through time unchanged; later
    chunks are downsampled by a stride-2 conv over [last frame of the previous chunk, chunk],
    or upsampled by a causal conv that doubles channels into 2 frames per input frame.
    """

    def __init__(self, dim: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode.startswith('upsample'):
            self.resample = nn.Sequential(NearestUpsample2x(),
                                          nn.Conv2d(dim, dim // 2, 3, padding=1))
            if mode == 'upsample3d':
                self.time_conv = CausalConv3d(dim, 2 * dim, (3, 1, 1), padding=(1, 0, 0))
        elif mode.startswith('downsample'):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)),
                                          nn.Conv2d(dim, dim, 3, stride=2))
            if mode == 'downsample3d':
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))
        else:
            raise ValueError(f'Resample mode {mode!r} is not one of upsample2d, upsample3d, '
                             'downsample2d, downsample3d')

    def forward(self, x: Tensor, cache: ChunkCache) -> Tensor:
        if self.mode == 'upsample3d':
            if self in cache:  # not the first chunk: 1 frame -> 2 frames
                B, C, T, H, W = x.shape
                x = self.time_conv(x, cache).reshape(B, 2, C, T, H, W)
                x = x.permute(0, 2, 3, 1, 4, 5).reshape(B, C, 2 * T, H, W)
            cache[self] = True
        x = _per_frame_2d(self.resample, x)
        if self.mode == 'downsample3d':
            previous = cache.get(self)
            cache[self] = x[:, :, -1:].clone()
            if previous is not None:
                x = self.time_conv(torch.cat([previous, x], dim=2))
        return x


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        # Indices 0..6 as released: norm, act, conv, norm, act, dropout (none), conv.
        self.residual = nn.Sequential(
            RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=(1, 1, 1)),
            RMSNorm(out_dim), nn.SiLU(), nn.Identity(),
            CausalConv3d(out_dim, out_dim, 3, padding=(1, 1, 1)))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, cache: ChunkCache) -> Tensor:
        shortcut = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + shortcut


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention within each frame."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, spatial_dims=2)
        self.to_qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def _attend(self, x_N_C_H_W: Tensor) -> Tensor:
        N, C, H, W = x_N_C_H_W.shape
        qkv = self.to_qkv(self.norm(x_N_C_H_W)).reshape(N, 1, 3 * C, H * W).transpose(2, 3)
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)  # N, 1, HW, C
        return self.proj(out[:, 0].transpose(1, 2).reshape(N, C, H, W))

    def forward(self, x: Tensor, cache: ChunkCache | None = None) -> Tensor:
        return x + _per_frame_2d(self._attend, x)


def _middle(dim: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


def _head(dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(RMSNorm(dim), nn.SiLU(), CausalConv3d(dim, out_dim, 3, padding=(1, 1, 1)))


def _run(layers: nn.Sequential, x: Tensor, cache: ChunkCache) -> Tensor:
    for layer in layers:
        x = layer(x, cache) if isinstance(layer, (CausalConv3d, ResidualBlock, Resample,
                                                  AttentionBlock)) else layer(x)
    return x


class Encoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=(1, 1, 1))
        layers = []
        for i, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i < len(cfg.dim_mult) - 1:
                temporal = cfg.temperal_downsample[i]
                layers.append(Resample(out_dim, 'downsample3d' if temporal else 'downsample2d'))
        self.downsamples = nn.Sequential(*layers)
        self.middle = _middle(dims[-1])
        self.head = _head(dims[-1], 2 * cfg.z_dim)

    def forward(self, x: Tensor, cache: ChunkCache) -> Tensor:
        x = self.conv1(x, cache)
        for stage in (self.downsamples, self.middle, self.head):
            x = _run(stage, x, cache)
        return x


class Decoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        mults = cfg.dim_mult
        dims = [cfg.dim * m for m in (mults[-1], *mults[::-1])]
        temporal_up = cfg.temperal_downsample[::-1]
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=(1, 1, 1))
        self.middle = _middle(dims[0])
        layers = []
        for i, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
            if i > 0:
                in_dim //= 2  # the previous Resample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i < len(mults) - 1:
                layers.append(Resample(out_dim, 'upsample3d' if temporal_up[i] else 'upsample2d'))
        self.upsamples = nn.Sequential(*layers)
        self.head = _head(dims[-1], 3)

    def forward(self, x: Tensor, cache: ChunkCache) -> Tensor:
        x = self.conv1(x, cache)
        for stage in (self.middle, self.upsamples, self.head):
            x = _run(stage, x, cache)
        return x


class WanVAE(nn.Module):
    """encode: video in [-1, 1] (B,3,T,H,W) -> normalised latent (mu - mean) / std,
    (B, z, 1+(T-1)//4, H/8, W/8); decode: the inverse to video in about [-1, 1]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1)
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder3d(cfg)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv1.weight.dtype

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, 1/std) shaped (1, z, 1, 1, 1) in the compute dtype, as the release does."""
        shape = (1, self.cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(self.cfg.latent_mean, dtype=like.dtype, device=like.device)
        inv_std = 1.0 / torch.tensor(self.cfg.latent_std, dtype=like.dtype, device=like.device)
        return mean.view(shape), inv_std.view(shape)

    def encode_mu(self, video_B_3_T_H_W: Tensor) -> Tensor:
        """Raw (un-normalised) posterior mean; deterministic, no sampling."""
        cfg = self.cfg
        step = cfg.spatial_compression
        if video_B_3_T_H_W.ndim != 5 or video_B_3_T_H_W.shape[1] != 3:
            raise ValueError(f'WanVAE.encode: video must be (B, 3, T, H, W) in [-1, 1], got '
                             f'{tuple(video_B_3_T_H_W.shape)}')
        T, H, W = video_B_3_T_H_W.shape[2:]
        if (T - 1) % cfg.temporal_compression or H % step or W % step:
            raise ValueError(f'WanVAE.encode: video T,H,W = {T},{H},{W}: T must be 1 + '
                             f'{cfg.temporal_compression}k and H, W multiples of {step}')
        x = video_B_3_T_H_W.to(self.dtype)
        cache: ChunkCache = {}
        chunks = [x[:, :, :1]] + [x[:, :, i:i + cfg.temporal_window]
                                  for i in range(1, T, cfg.temporal_window)]
        # conv1 is 1x1x1; applying it per chunk keeps every latent frame's arithmetic
        # independent of later frames, so prefixes encode bit-exactly alike.
        mu = [self.conv1(self.encoder(chunk, cache))[:, :cfg.z_dim] for chunk in chunks]
        return torch.cat(mu, dim=2)  # the log-variance half is unused

    def normalize(self, mu: Tensor) -> Tensor:
        mean, inv_std = self._stats(mu)
        return (mu - mean) * inv_std

    def denormalize(self, latent: Tensor) -> Tensor:
        mean, inv_std = self._stats(latent)
        return latent / inv_std + mean

    def encode(self, video_B_3_T_H_W: Tensor) -> Tensor:
        return self.normalize(self.encode_mu(video_B_3_T_H_W))

    def decode_mu(self, mu_B_z_T_H_W: Tensor) -> Tensor:
        """Raw latent -> video; one latent frame at a time (1 pixel frame, then 4 each)."""
        self._check_latent(mu_B_z_T_H_W)
        x = mu_B_z_T_H_W.to(self.dtype)
        cache: ChunkCache = {}
        return torch.cat([self.decoder(self.conv2(x[:, :, i:i + 1]), cache)
                          for i in range(x.shape[2])], dim=2)

    def _check_latent(self, latent: Tensor) -> None:
        if latent.ndim != 5 or latent.shape[1] != self.cfg.z_dim:
            raise ValueError(f'WanVAE.decode: latent must be (B, {self.cfg.z_dim}, T, H, W), '
                             f'got {tuple(latent.shape)}')

    def decode(self, latent: Tensor) -> Tensor:
        self._check_latent(latent)
        return self.decode_mu(self.denormalize(latent.to(self.dtype)))
