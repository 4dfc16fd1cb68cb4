"""Small synthetic ALOHA episodes on disk (our export layout) and a tiny model preset, for the
training and evaluation tests."""
from pathlib import Path

import h5py
import numpy as np

from cosmos_policy_ros.names import CAMERAS

# 64 px images -> 8x8 latents (room for the 50 x 14 chunk); the smallest DiT and VAE.
TEST_PRESET = {'name': 'test', 'image_size': 64, 'text_tokens': 4, 'text_encoder': 'minilm',
               'dit': {'model_channels': 32, 'num_blocks': 1, 'num_heads': 2,
                       'crossattn_emb_channels': 384, 'adaln_lora_dim': 8},
               'vae': {'dim': 4, 'num_res_blocks': 1}}


def image(step: int, camera: str, seed: int, size: int = 64) -> np.ndarray:
    """A grey scene with a red square that moves with the step and the episode seed."""
    out = np.full((size, size, 3), 90, np.uint8)
    offset = (seed * 7 + step + CAMERAS.index(camera) * 11) % (size - 8)
    out[offset:offset + 8, size // 3:size // 3 + 8] = (220, 30, 30)
    return out


def write_episode(path: Path, seed: int, steps: int = 24, success: bool = True,
                  size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.5, 0.5, 14)
    t = np.arange(steps)[:, None] / steps
    actions = base + 0.3 * np.sin(2 * np.pi * t + np.arange(14))
    actions[:, [6, 13]] = 0.5 + 0.4 * np.cos(2 * np.pi * t)
    qpos = np.vstack([actions[:1], actions[:-1]])
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        f.attrs.update({'sim': True, 'compress': False, 'success': success, 'seed': str(seed),
                        'instruction': 'transfer the red cube to the other arm'})
        f.create_dataset('observations/qpos', data=qpos.astype(np.float32))
        f.create_dataset('action', data=actions.astype(np.float32))
        for camera in CAMERAS:
            f.create_dataset(f'observations/images/{camera}',
                             data=np.stack([image(k, camera, seed, size) for k in range(steps)]))
    return path


def write_dataset(directory: Path, episodes: int = 3, steps: int = 24) -> Path:
    for i in range(episodes):
        write_episode(directory / f'episode_{i}.hdf5', seed=i, steps=steps)
    return directory


def train_config(tmp_path: Path, data: Path, **overrides) -> dict:
    """A train config dict for the tiny preset on `data` (overrides are top-level keys or
    'section.key' strings)."""
    config = {'name': 'test', 'output': str(tmp_path / 'run'), 'preset': TEST_PRESET,
              'allow_random_vae': True, 'threads': 1,
              'data': {'episodes': [str(data)], 'val_episodes': 1},
              'cache': {'dir': str(tmp_path / 'cache'), 'draws': 1},
              'optim': {'steps': 4, 'batch_size': 4, 'warmup_steps': 2, 'decay_steps': 4},
              'val': {'every': 0, 'samples': 4, 'num_steps': 1},
              'checkpoint': {'every': 2, 'keep': 3}}
    for key, value in overrides.items():
        section, _, name = key.partition('.')
        if name:
            config.setdefault(section, {})[name] = value
        else:
            config[key] = value
    return config
