"""Frozen-VAE latents of every training sample, on disk, computed once.

The VAE does not train during fine-tuning, so a sample's image latents never change: only
the DiT needs the step-by-step work. Because the Wan VAE is causal in time, a latent frame
depends on every pixel frame before it, so the unit of caching is the sample (episode, t):
its 41-frame video (blank, proprio blank, current cameras, action/proprio blanks, future
cameras, value blank) is encoded once per augmentation draw, and the six camera latent frames
are kept; frame 0 (a lone blank image) is the same for every sample and stored once, and the
injected frames are overwritten anyway.

Augmentation and caching: each sample is encoded for `draws` parameter draws of the
reference augmentation (draw 0 = the deployed policy's test-time view), and training picks one
draw per sample per step. More draws = more augmentation diversity for more encode time.

Layout on disk: <root>/<key digest>/key.json (what the latents depend on: VAE weights hash
and config, image size, augmentation, draws, layout, cameras) + blank.safetensors + one
<episode digest>.safetensors per episode (keyed by path, size and mtime), written atomically,
so an interrupted build resumes where it stopped and a changed key or file is re-encoded.
"""
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.preprocess import preprocess_image, to_model_tensor
from cosmos_policy_ros.training.augment import AugmentConfig, augmented_view
from cosmos_policy_ros.training.episodes import Episode, future_index

CACHE_VERSION = 1


class CacheError(ValueError):
    """A cache directory or shard is corrupt or does not belong to this key."""


def state_hash(module: torch.nn.Module) -> str:
    """sha256 of a module's state (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to('cpu').contiguous()
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}'.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b'')
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    vae_hash: str
    vae_config: str
    image_size: int
    augment: dict
    draws: int
    layout: str
    cameras: tuple
    version: int = CACHE_VERSION
    camera_crops: dict = field(default_factory=dict, hash=False)

    def digest(self) -> str:
        fields = asdict(self)
        if not fields['camera_crops']:     # keeps the digests of caches built before crops
            del fields['camera_crops']
        return _digest(json.dumps(fields, sort_keys=True, default=list))[:20]


def image_roles(layout: L.LatentLayout) -> list[int]:
    """Latent frame indices that hold camera images (current and future)."""
    return [i for i, role in enumerate(layout.roles) if role not in L.INJECTED_ROLES]


class FrameStore:
    """Episode frames at the model size (before augmentation), {camera: (T, S, S, 3) uint8},
    decoded, cropped (the preset's camera_crops) and resized once per episode and kept for the
    `keep` most recent episodes."""

    def __init__(self, image_size: int, cameras, keep: int = 8, crops: dict | None = None):
        self.size, self.cameras, self.keep = image_size, sorted(set(cameras)), keep
        self.crops = dict(crops or {})
        self._frames: OrderedDict = OrderedDict()     # episode fingerprint -> {camera: frames}

    def __call__(self, episode: Episode) -> dict:
        key = episode.fingerprint
        if key not in self._frames:
            self._frames[key] = {camera: self._decode(episode, camera)
                                 for camera in self.cameras}
            while len(self._frames) > self.keep:
                self._frames.popitem(last=False)
        self._frames.move_to_end(key)
        return self._frames[key]

    def _decode(self, episode: Episode, camera: str) -> np.ndarray:
        """(T, S, S, 3); steps without a frame (sparse rollouts) stay black, never sampled."""
        steps = episode.steps_with_frames
        out = np.zeros((episode.length, self.size, self.size, 3), np.uint8)
        for t, image in zip(steps.tolist(), episode.images(camera, steps)):
            out[t] = preprocess_image(image, camera, self.size, raw_hw=image.shape[:2],
                                      test_time_crop=False, crop=self.crops.get(camera))
        return out


class SampleEncoder:
    """(episode, t, draw) -> the sample's camera latent frames, batched through the VAE."""

    def __init__(self, vae, layout: L.LatentLayout, image_size: int, augment: AugmentConfig,
                 device: str = 'cpu', frames_in_memory: int = 8, crops: dict | None = None):
        self.vae, self.layout, self.size, self.augment = vae, layout, image_size, augment
        self.device = torch.device(device)
        self.roles = image_roles(layout)
        self.cameras = tuple(layout.cameras[layout.roles[i]] for i in self.roles)
        self.episode_frames = FrameStore(image_size, self.cameras, frames_in_memory, crops)

    def _sample_images(self, episode: Episode, frames: dict, t: int, draw: int) -> np.ndarray:
        future = future_index(t, episode.length)
        stack = np.stack([frames[camera][future if self.layout.roles[i].value.startswith(
            'future_') else t] for i, camera in zip(self.roles, self.cameras)])
        key = (int(_digest(episode.fingerprint)[:12], 16), t)
        return augmented_view(stack, self.augment, draw, key)

    @torch.no_grad()
    def encode(self, episode: Episode, items: list[tuple[int, int]]) -> torch.Tensor:
        """Latents (n, frames, C, h, w) float32 for (t, draw) items of one episode."""
        frames = self.episode_frames(episode)
        views = np.stack([self._sample_images(episode, frames, t, draw) for t, draw in items])
        images = to_model_tensor(views.reshape(-1, *views.shape[2:]))
        images = images.reshape(len(items), len(self.roles), *images.shape[1:])
        current, future = {}, {}
        for slot, index in enumerate(self.roles):
            role = self.layout.roles[index]
            target = future if role.value.startswith('future_') else current
            target[self.layout.cameras[role]] = images[:, slot]
        video = L.build_pixel_sequence(self.layout, current, future)
        dtype = next(self.vae.parameters()).dtype
        latent = self.vae.encode(video.to(self.device, dtype)).float()
        return latent[:, :, self.roles].permute(0, 2, 1, 3, 4).cpu()

    @torch.no_grad()
    def blank_latent(self) -> torch.Tensor:
        """Latent frame 0 (a lone black image), (C, h, w) float32."""
        dtype = next(self.vae.parameters()).dtype
        video = torch.full((1, 3, 1, self.size, self.size), -1.0, device=self.device,
                           dtype=dtype)
        return self.vae.encode(video).float()[0, :, 0].cpu()


def _atomic_save(tensors: dict, path: Path, metadata: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class LatentCache:
    """Per-episode latent shards (T, draws, frames, C, h, w) float16 under one key."""

    def __init__(self, root: str | Path, key: CacheKey, encoder: SampleEncoder,
                 batch_size: int = 16):
        self.key, self.encoder, self.batch_size = key, encoder, batch_size
        self.dir = Path(root) / key.digest()
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / 'key.json'
        text = json.dumps(asdict(key), sort_keys=True, indent=2, default=list) + '\n'
        if key_file.is_file() and key_file.read_text() != text:
            raise CacheError(f'{key_file}: written for another key (hash collision or edited '
                             'file); delete the directory to rebuild it')
        if not key_file.is_file():
            key_file.write_text(text)

    def shard_path(self, episode: Episode) -> Path:
        return self.dir / f'{_digest(episode.fingerprint)[:20]}.safetensors'

    def missing(self, episodes: list[Episode]) -> list[Episode]:
        return [e for e in episodes if not self.shard_path(e).is_file()]

    def build(self, episodes: list[Episode], progress: bool = True) -> dict:
        """Encode the episodes without a shard; returns {'encoded': n samples, 'seconds'}."""
        import time

        from tqdm import tqdm
        blank = self.dir / 'blank.safetensors'
        if not blank.is_file():
            _atomic_save({'blank': self.encoder.blank_latent().contiguous()}, blank,
                         {'key': self.key.digest()})
        todo = self.missing(episodes)
        total = sum(len(e.sample_steps) for e in todo) * self.key.draws
        start, count = time.perf_counter(), 0
        with tqdm(total=total, desc='latent cache', unit='sample', disable=not progress) as bar:
            for episode in todo:
                steps = episode.sample_steps
                items = [(t, d) for t in steps.tolist() for d in range(self.key.draws)]
                parts = []
                for i in range(0, len(items), self.batch_size):
                    batch = items[i:i + self.batch_size]
                    parts.append(self.encoder.encode(episode, batch).half())
                    bar.update(len(batch))
                encoded = torch.cat(parts).reshape(len(steps), self.key.draws,
                                                   *parts[0].shape[1:])
                # Every step has a row so samples index by t; steps that are never sampled
                # (sparse rollouts) stay zero.
                latents = encoded.new_zeros((episode.length, *encoded.shape[1:]))
                latents[torch.from_numpy(steps)] = encoded
                _atomic_save({'latents': latents.contiguous()}, self.shard_path(episode),
                             {'key': self.key.digest(), 'episode': episode.fingerprint})
                count += len(items)
        return {'encoded': count, 'seconds': time.perf_counter() - start}

    def load(self, episode: Episode) -> torch.Tensor:
        path = self.shard_path(episode)
        try:
            latents = load_file(str(path))['latents']
        except (SafetensorError, OSError, KeyError) as exc:
            raise CacheError(f'{path}: unreadable cache shard ({exc}); delete it to re-encode '
                             f'{episode.path}') from None
        expected = (episode.length, self.key.draws, len(self.encoder.roles))
        if tuple(latents.shape[:3]) != expected:
            raise CacheError(f'{path}: shape {tuple(latents.shape)} does not match {expected} '
                             f'for {episode.path}; delete it to re-encode')
        return latents

    def blank(self) -> torch.Tensor:
        return load_file(str(self.dir / 'blank.safetensors'))['blank']
