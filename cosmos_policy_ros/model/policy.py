"""CosmosPolicy: observations in robot units -> action chunk, future state and value.

One latent video per sample (layout.py): the conditioning frames come from the VAE (images)
and injection (proprio); the sampler generates the rest; actions, future proprio and value are
read back from their frames. Everything is batched: B = observations x candidates, each
candidate with its own noise seed, so best-of-N is one call.

Shape letters: B batch, C latent channels, T latent frames, H/W latent size.
"""
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.config import ModelPreset, get_preset
from cosmos_policy_ros.model.layout import LatentLayout, Role, SampleKind, ValueMode
from cosmos_policy_ros.model.normalization import (
    DatasetStatistics,
    Range,
    load_statistics,
)
from cosmos_policy_ros.model.preprocess import (
    from_model_tensor,
    preprocess_image,
    to_model_tensor,
)
from cosmos_policy_ros.model.sampler import SamplerConfig, generate
from cosmos_policy_ros.model.text import TextEmbeddings
from cosmos_policy_ros.names import CHUNK_LENGTH, STATE_DIM
from cosmos_policy_ros.runtime.parts import EagerParts, make_parts

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


def vae_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """The reference runs the VAE in bf16 whatever the DiT does (Wan2pt1VAEInterface); here a
    reduced-precision policy does too, and a float32 one (CPU, tests) keeps float32."""
    return torch.float32 if dtype == torch.float32 else torch.bfloat16


def future_pixel_frame(latent_frame: int) -> int:
    """The decoded pixel frame shown for a generated latent frame i >= 1: the first of its
    four, (i-1)*4+1, as the reference's get_future_images_from_generated_samples."""
    return (latent_frame - 1) * L.TEMPORAL_COMPRESSION + 1


class PolicyInputError(ValueError):
    """An observation is malformed (missing camera, wrong image, non-finite proprio, ...)."""


@dataclass
class Observation:
    images: dict          # camera -> H x W x 3 uint8 RGB (cam_high, cam_left_wrist, ...)
    proprio: np.ndarray   # (14,) robot units
    task: str


@dataclass
class PolicyOutput:
    actions: np.ndarray           # B, chunk, 14 robot units, float32
    future_proprio: np.ndarray    # B, 14 robot units
    value: np.ndarray             # B in [0, 1]
    future_images: dict | None    # camera -> B, S, S, 3 uint8
    action_latent: torch.Tensor   # B, C, H, W (raw generated action frame, for the world model)
    latents: torch.Tensor         # B, C, T, H, W final sample (for predict_value)
    seeds: list
    timings: dict = field(default_factory=dict)   # stage -> seconds


def identity_statistics(dim: int = STATE_DIM) -> DatasetStatistics:
    """min -1, max 1: robot units == normalised units (for untrained/random models)."""
    ones = np.ones(dim)
    rng = Range(min=-ones, max=ones, mean=0 * ones, std=ones, median=0 * ones)
    return DatasetStatistics(actions=rng, proprio=rng)


class _Stopwatch:
    def __init__(self, device: torch.device):
        self.device, self.timings = device, {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


class CosmosPolicy:
    def __init__(self, preset: ModelPreset, dit: torch.nn.Module, vae: torch.nn.Module,
                 text: TextEmbeddings, statistics: DatasetStatistics | None = None,
                 device: str | torch.device = 'cpu', dtype: str = 'float32',
                 layout: LatentLayout = L.ALOHA_LAYOUT, sampler: SamplerConfig = SamplerConfig(),
                 test_time_crop: bool = True, chunk_length: int = CHUNK_LENGTH):
        if dtype not in DTYPES:
            raise ValueError(f'dtype {dtype!r} is not one of {list(DTYPES)}')
        self.preset, self.layout, self.sampler = preset, layout, sampler
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        self.dit = dit.to(self.device, self.dtype).eval()
        self.vae = vae.to(self.device, vae_dtype_for(self.dtype)).eval()
        self.parts = EagerParts(self.dit, self.vae)   # see use_runtime
        self.text = text
        self.statistics = statistics or identity_statistics()
        self.test_time_crop, self.chunk_length = test_time_crop, chunk_length
        size = preset.latent_size
        L.check_fits(chunk_length * STATE_DIM, (preset.vae.z_dim, size, size),
                     f'preset {preset.name!r}: the action chunk ({chunk_length}x{STATE_DIM})')

    @classmethod
    def from_config(cls, preset: str | ModelPreset = 'tiny', checkpoint: str | Path | None = None,
                    statistics: str | Path | DatasetStatistics | None = None, text=None,
                    device: str = 'cpu', dtype: str = 'float32', init_seed: int = 0,
                    runtime: str = 'eager', engine_cache: str | Path | None = None,
                    **kwargs) -> 'CosmosPolicy':
        """checkpoint: None (random init, seeded), a released .pt (with tokenizer.pth beside it),
        a directory written by model.checkpoint.save_checkpoint / `train`, or the name of a
        shipped model (models/<name>/). text: see TextEmbeddings.from_source. statistics: the
        dataset statistics JSON (None: the checkpoint's own, else identity)."""
        from cosmos_policy_ros.model.dit import DiT
        from cosmos_policy_ros.model.vae import WanVAE
        from cosmos_policy_ros.runtime.parts import check_available
        check_available(runtime, device)
        preset = preset if isinstance(preset, ModelPreset) else get_preset(preset)
        if checkpoint is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                dit, vae = DiT(preset.dit), WanVAE(preset.vae)
        else:
            from cosmos_policy_ros.model.checkpoint import (
                checkpoint_statistics,
                resolve_checkpoint,
            )
            checkpoint = resolve_checkpoint(checkpoint)
            preset, dit, vae = _load_weights(preset, checkpoint)
            statistics = statistics if statistics is not None else checkpoint_statistics(
                checkpoint)
        if statistics is not None and not isinstance(statistics, DatasetStatistics):
            statistics = load_statistics(statistics)
        text = TextEmbeddings.from_source(text, preset.text_tokens, preset.text_dim,
                                          preset.text_encoder)
        policy = cls(preset, dit, vae, text, statistics, device, dtype, **kwargs)
        return policy.use_runtime(runtime, engine_cache)

    def use_runtime(self, runtime: str = 'eager',
                    engine_cache: str | Path | None = None) -> 'CosmosPolicy':
        """Run the networks with `runtime` (runtime.parts.RUNTIMES); onnxruntime and tensorrt
        export and build their engines into engine_cache on first use."""
        self.parts = make_parts(self, runtime, engine_cache)
        return self

    @property
    def runtime(self) -> str:
        return self.parts.name

    def known_tasks(self) -> list[str]:
        return self.text.known_tasks()

    # ------------------------------------------------------------------ inputs
    def prepare(self, observations: Sequence[Observation], watch: _Stopwatch | None = None):
        """Validated model inputs: images camera -> B,3,S,S in [-1,1], normalised proprio B,14,
        text embeddings B,N,D (all on the device)."""
        watch = watch or _Stopwatch(self.device)
        if isinstance(observations, Observation):
            observations = [observations]
        if not observations:
            raise PolicyInputError('predict needs at least one Observation')
        cameras = self.layout.current_cameras
        size = self.preset.image_size
        with watch('preprocess'):
            images = {}
            for camera in cameras:
                frames = []
                for i, obs in enumerate(observations):
                    if camera not in obs.images:
                        raise PolicyInputError(f'observation {i}: missing camera {camera!r}; '
                                               f'got {sorted(obs.images)}, need {list(cameras)}')
                    frames.append(preprocess_image(
                        obs.images[camera], camera, size, test_time_crop=self.test_time_crop,
                        crop=self.preset.camera_crops.get(camera)))
                images[camera] = to_model_tensor(np.stack(frames)).to(self.device)
            proprio = np.stack([self._check_proprio(obs.proprio, i)
                                for i, obs in enumerate(observations)])
            proprio = torch.from_numpy(self.statistics.proprio.normalize(proprio)).float()
        with watch('text'):
            text = self.text.batch([obs.task for obs in observations]).to(self.device)
        return images, proprio.to(self.device), text

    @staticmethod
    def _check_proprio(proprio, index: int) -> np.ndarray:
        proprio = np.asarray(proprio, dtype=np.float64)
        if proprio.shape != (STATE_DIM,):
            raise PolicyInputError(f'observation {index}: proprio must have shape ({STATE_DIM},) '
                                   f'[left 6 joints, left gripper, right 6, right gripper], got '
                                   f'{proprio.shape}')
        if not np.all(np.isfinite(proprio)):
            raise PolicyInputError(f'observation {index}: proprio has NaN/inf at indices '
                                   f'{np.flatnonzero(~np.isfinite(proprio)).tolist()}; check the '
                                   'joint state source')
        return proprio

    def encode(self, images: dict, full: bool = False) -> torch.Tensor:
        """Latents B,C,T,H,W of the pixel video. Without `full` only the conditioning prefix
        is encoded (the VAE is causal, so it equals the full encode's first frames) and the
        other frames are zeros."""
        count = None if full else self.layout.num_condition_frames_policy
        video = L.build_pixel_sequence(self.layout, images, num_latent_frames=count)
        with torch.no_grad():
            latent = self.parts.encode(video)
        missing = self.layout.num_frames - latent.shape[2]
        if missing:
            latent = torch.cat([latent, latent.new_zeros(*latent.shape[:2], missing,
                                                         *latent.shape[3:])], dim=2)
        return latent

    def _seeds(self, seeds, count: int) -> list[int]:
        if isinstance(seeds, (int, np.integer)):
            return [int(seeds) + i for i in range(count)]
        seeds = [int(s) for s in seeds]
        if len(seeds) != count:
            raise ValueError(f'seeds: need {count} seeds (one per candidate), got {len(seeds)}')
        return seeds

    # ------------------------------------------------------------------ sampling
    def _generate(self, gt: torch.Tensor, mask_B_T: torch.Tensor, text: torch.Tensor,
                  seeds: list[int], num_steps: int) -> torch.Tensor:
        return generate(self.dit, gt, mask_B_T, text, seeds, num_steps, self.sampler,
                        self.parts.denoise)

    def _mask(self, kind: SampleKind, batch: int, value_mode=ValueMode.V_SAS) -> torch.Tensor:
        mask = torch.from_numpy(self.layout.condition_mask(kind, value_mode))
        return mask[None].expand(batch, -1)

    def _readback(self, latents: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lay = self.layout
        actions = L.read_back(latents, lay.index(Role.ACTION), self.chunk_length * STATE_DIM,
                              'action chunk').reshape(-1, self.chunk_length, STATE_DIM)
        future = L.read_back(latents, lay.index(Role.FUTURE_PROPRIO), STATE_DIM, 'proprio')
        value = L.read_value(latents, lay.index(Role.VALUE))
        stats = self.statistics
        return (stats.actions.unnormalize(actions.cpu().numpy()).astype(np.float32),
                stats.proprio.unnormalize(future.cpu().numpy()).astype(np.float32),
                value.cpu().numpy().astype(np.float32))

    @torch.no_grad()
    def _decode_future(self, latents: torch.Tensor, encoded: torch.Tensor) -> dict:
        """Decode generated future frames; injected frames get back their blank-image latents
        first (as the reference's undo_latent_injection)."""
        latents = latents.clone()
        injected = list(self.layout.indices(L.INJECTED_ROLES))
        latents[:, :, injected] = encoded[:, :, injected]
        video = self.parts.decode(latents)
        return {self.layout.cameras[role]: from_model_tensor(video[:, :, future_pixel_frame(i)])
                for i, role in enumerate(self.layout.roles)
                if role.value.startswith('future_') and role in self.layout.cameras}

    def _output(self, latents, encoded, seeds, watch, decode_future) -> PolicyOutput:
        with watch('readback'):
            actions, future_proprio, value = self._readback(latents)
        future_images = None
        if decode_future:
            with watch('decode'):
                future_images = self._decode_future(latents, encoded)
        return PolicyOutput(actions, future_proprio, value, future_images,
                            latents[:, :, self.layout.index(Role.ACTION)].clone(), latents, seeds,
                            watch.timings)

    # ------------------------------------------------------------------ public API
    def predict(self, obs, num_steps: int = 10, seeds: Sequence[int] | int = 0,
                num_candidates: int = 1, decode_future: bool = False) -> PolicyOutput:
        """p(a, s', V | s). Rows are observation-major: row o*N + c = observation o, candidate
        c with seed seeds[c] (an int seed s means s, s+1, ...)."""
        watch = _Stopwatch(self.device)
        if not isinstance(seeds, (int, np.integer)) and num_candidates == 1:
            num_candidates = len(seeds)
        seeds = self._seeds(seeds, num_candidates)
        images, proprio, text = self.prepare(obs, watch)
        with watch('vae_encode'):
            encoded = self.encode(images, full=decode_future)
        gt = L.inject(encoded, self.layout.index(Role.PROPRIO), proprio, 'proprio')
        rows = gt.shape[0] * num_candidates
        gt, text_b = (x.repeat_interleave(num_candidates, 0) for x in (gt, text))
        with watch('denoise'):
            latents = self._generate(gt, self._mask(SampleKind.POLICY, rows), text_b,
                                     seeds * (rows // num_candidates), num_steps)
        return self._output(latents, encoded.repeat_interleave(num_candidates, 0),
                            seeds * (rows // num_candidates), watch, decode_future)

    def _rows(self, obs, batch: int, what: str):
        observations = [obs] if isinstance(obs, Observation) else list(obs)
        if batch % len(observations):
            raise PolicyInputError(f'{what} has {batch} rows, not a multiple of the '
                                   f'{len(observations)} observations')
        return observations, batch // len(observations)

    def _row_seeds(self, seeds, rows: int) -> list[int]:
        if isinstance(seeds, (int, np.integer)):
            return [int(seeds)] * rows
        return self._seeds(seeds, rows)

    def predict_future(self, obs, actions: np.ndarray | None = None,
                       action_latent: torch.Tensor | None = None, num_steps: int = 5,
                       seeds: Sequence[int] | int = 0,
                       decode_future: bool = False) -> PolicyOutput:
        """World model p(s', V | s, a): `actions` (B, chunk, 14) robot units, or the raw
        `action_latent` (B, C, H, W) of a previous predict. B = observations x k (row-major)."""
        if (actions is None) == (action_latent is None):
            raise ValueError('predict_future needs exactly one of actions or action_latent')
        watch = _Stopwatch(self.device)
        batch = len(actions) if actions is not None else action_latent.shape[0]
        observations, repeat = self._rows(obs, batch, 'actions/action_latent')
        images, proprio, text = self.prepare(observations, watch)
        with watch('vae_encode'):
            encoded = self.encode(images, full=decode_future)
        gt = L.inject(encoded, self.layout.index(Role.PROPRIO), proprio, 'proprio')
        gt, text, encoded = (x.repeat_interleave(repeat, 0) for x in (gt, text, encoded))
        action_frame = self.layout.index(Role.ACTION)
        if actions is not None:
            normalized = self._normalized_actions(actions)
            gt = L.inject(gt, action_frame, normalized.to(self.device), 'action chunk')
        else:
            gt[:, :, action_frame] = action_latent.to(self.device, gt.dtype)
        seeds = self._row_seeds(seeds, batch)
        with watch('denoise'):
            latents = self._generate(gt, self._mask(SampleKind.WORLD_MODEL, batch), text, seeds,
                                     num_steps)
        return self._output(latents, encoded, seeds, watch, decode_future)

    def _normalized_actions(self, actions) -> torch.Tensor:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3 or actions.shape[1:] != (self.chunk_length, STATE_DIM):
            raise PolicyInputError(f'actions must be (B, {self.chunk_length}, {STATE_DIM}) robot '
                                   f'units, got {actions.shape}')
        if not np.all(np.isfinite(actions)):
            raise PolicyInputError('actions contain NaN/inf')
        return torch.from_numpy(self.statistics.actions.normalize(actions)).float()

    def predict_value(self, obs, future: PolicyOutput | torch.Tensor,
                      actions: np.ndarray | None = None, num_steps: int = 5,
                      seeds: Sequence[int] | int = 0, mode: str = 'v_sprime') -> np.ndarray:
        """Value (B,) in [0,1] of the latents of predict_future (current + action + future
        frames); mode v_sprime = V(s'), q_sa = Q(s,a), v_sas = V(s,a,s'). `actions` in robot
        units, if given, replace the action frame."""
        mode = ValueMode(mode)
        latents = future.latents if isinstance(future, PolicyOutput) else future
        gt = latents.to(self.device).float().clone()
        batch = gt.shape[0]
        observations, repeat = self._rows(obs, batch, 'future latents')
        watch = _Stopwatch(self.device)
        with watch('text'):
            text = self.text.batch([o.task for o in observations]).to(self.device)
        text = text.repeat_interleave(repeat, 0)
        if actions is not None:
            gt = L.inject(gt, self.layout.index(Role.ACTION),
                          self._normalized_actions(actions).to(self.device), 'action chunk')
        with watch('denoise'):
            out = self._generate(gt, self._mask(SampleKind.VALUE, batch, mode), text,
                                 self._row_seeds(seeds, batch), num_steps)
        return L.read_value(out, self.layout.index(Role.VALUE)).cpu().numpy().astype(np.float32)


def _load_weights(preset: ModelPreset, checkpoint: Path):
    """(preset, dit, vae) from a released .pt (+ tokenizer.pth beside it) or our checkpoint
    directory (whose saved preset wins: the weights are shaped by it)."""
    from cosmos_policy_ros.model import checkpoint as ckpt
    if checkpoint.is_dir():
        loaded = ckpt.load_checkpoint(checkpoint)
        return loaded.preset, loaded.dit, loaded.vae
    tokenizer = checkpoint.parent / 'tokenizer.pth'
    if not tokenizer.is_file():
        raise FileNotFoundError(f'{checkpoint}: the Wan2.1 VAE weights tokenizer.pth must sit '
                                f'beside the DiT checkpoint (expected {tokenizer})')
    # The reference loads the regular weights (load_model_from_checkpoint(load_ema_to_reg=False)).
    return (preset, ckpt.load_released_dit(checkpoint, preset.dit, prefer_ema=False),
            ckpt.load_wan_vae(tokenizer, preset.vae))
