"""Models for a training run: preset, frozen VAE, DiT initialisation and text embeddings."""
import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch

from cosmos_policy_ros.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_released_dit,
    load_wan_vae,
)
from cosmos_policy_ros.model.config import ConfigError, ModelPreset, get_preset, preset_from_dict
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.text import TextEmbeddings
from cosmos_policy_ros.model.vae import WanVAE


def resolve_preset(preset) -> ModelPreset:
    if isinstance(preset, ModelPreset):
        return preset
    if isinstance(preset, Mapping):
        return preset_from_dict(preset, where='config preset')
    return get_preset(str(preset))


def _differences(a, b, prefix: str = '') -> list[str]:
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            out += _differences(x, y, f'{prefix}{f.name}.')
        elif x != y:
            out.append(f'{prefix}{f.name}: {x!r} vs {y!r}')
    return out


def load_vae(source: str, preset: ModelPreset, allow_random: bool,
             seed: int = 0, field: str = 'vae') -> tuple[ModelPreset, WanVAE]:
    """(preset with the VAE's config, frozen VAE). source: our checkpoint directory with a
    'vae' module (train-vae writes one; its latent statistics come along), a Wan2.1
    tokenizer.pth, or '' for a seeded random VAE when allowed. field: the config key that
    named the source, for the errors (train's `vae`, train-vae's `init`)."""
    if not source:
        if not allow_random:
            raise ConfigError(
                f'config {field}: is empty; the policy needs trained VAE weights: train them '
                'with `cosmos-policy-ros train-vae`, pass the Wan2.1 tokenizer.pth, or set '
                'allow_random_vae: true to train on a frozen random encoder')
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vae = WanVAE(preset.vae)
        return preset, _frozen(vae)
    path = Path(source)
    if path.is_dir():
        loaded = load_checkpoint(path)
        if 'vae' not in loaded.states:
            raise ConfigError(f'config {field}: {path} has no vae module (modules: '
                              f'{sorted(loaded.states)}); point it at a train-vae output')
        structural = [d for d in _differences(loaded.preset.vae, preset.vae)
                      if not d.startswith(('latent_mean', 'latent_std'))]
        if structural:
            raise ConfigError(f'config {field}: {path} was trained with another VAE shape than '
                              f'preset {preset.name!r}: {"; ".join(structural)}; use the same '
                              'preset for train-vae and train')
        preset = dataclasses.replace(preset, vae=loaded.preset.vae)
        return preset, _frozen(loaded.vae.float())
    if path.suffix in ('.pth', '.pt'):
        return preset, _frozen(load_wan_vae(path, preset.vae).float())
    raise ConfigError(f'config {field}: {source!r} is neither a checkpoint directory nor a '
                      'tokenizer .pth file')


def _frozen(vae: WanVAE) -> WanVAE:
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae


def init_dit(source: str, preset: ModelPreset, seed: int,
             activation_checkpointing: bool = False) -> tuple[DiT, str]:
    """(DiT in float32, description). source: '' (seeded random init), a released .pt
    (its regular 'net.' weights, as the reference loads them) or our checkpoint dir."""
    if not source:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = DiT(preset.dit, activation_checkpointing=activation_checkpointing)
        return net, f'scratch (seed {seed})'
    path = Path(source)
    if path.is_dir():
        loaded = load_checkpoint(path)
        differences = _differences(loaded.preset.dit, preset.dit)
        if differences:
            raise ConfigError(f'config init: {path} was trained with another DiT than preset '
                              f'{preset.name!r}: {"; ".join(differences)}; set preset to the '
                              "checkpoint's or start from scratch")
        if 'dit' not in loaded.states:
            raise CheckpointError(f'{path}: no dit module to initialise from')
        net = DiT(preset.dit, activation_checkpointing=activation_checkpointing)
        net.load_state_dict({k: v.float() for k, v in loaded.states['dit'].items()})
        return net, f'checkpoint {path}'
    net = load_released_dit(path, preset.dit, prefer_ema=False).float()
    net.activation_checkpointing = activation_checkpointing
    return net, f'released {path}'


def text_table(source: str, preset: ModelPreset, instructions) -> dict:
    """{instruction: (1, tokens, dim) float32} computed once for the run."""
    text = TextEmbeddings.from_source(source or None, preset.text_tokens, preset.text_dim,
                                      preset.text_encoder)
    return {instruction: text(instruction).float() for instruction in instructions}
