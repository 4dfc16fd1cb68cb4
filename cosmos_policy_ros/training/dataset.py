"""Episodes -> split -> statistics -> model-ready batches of clean latents x0.

A batch row is built from a drawn (episode, t, kind): the camera latent frames come from the
latent cache (one random augmentation draw) or are encoded on the fly; frame 0 is the lone
blank image's latent; proprio, action chunk, future proprio and value are normalised and
injected into their frames (cosmos_policy.md §3). The split is by episode, and the dataset
statistics (released JSON format) come from the training episodes only.

Shape letters: B batch, C latent channels, T latent frames, H/W latent size.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.normalization import (
    DatasetStatistics,
    compute_statistics,
    load_statistics,
)
from cosmos_policy_ros.model.training import inject_state
from cosmos_policy_ros.training.config import DataConfig
from cosmos_policy_ros.training.episodes import DEMO, ROLLOUT, Episode, read_episodes
from cosmos_policy_ros.training.samples import MixConfig, SampleMix, episode_returns, window


class DataError(ValueError):
    """The dataset is empty, inconsistent or cannot be split as asked."""


@dataclass
class Split:
    train: list[Episode]
    val: list[Episode]


def load_episodes(cfg: DataConfig) -> list[Episode]:
    """Demonstrations then rollouts; failed demos skipped or turned into failure rollouts."""
    episodes = []
    if cfg.episodes:
        episodes += read_episodes(cfg.episodes, cfg.cameras, kind=DEMO,
                                  instruction=cfg.instruction)
    if cfg.rollouts:
        episodes += read_episodes(cfg.rollouts, cfg.cameras, kind=ROLLOUT,
                                  instruction=cfg.instruction)
    if not episodes:
        raise DataError('data.episodes and data.rollouts are empty: list the exported HDF5 '
                        'files or directories (e.g. runs/demos/transfer_cube/hdf5)')
    kept = []
    for episode in episodes:
        if episode.kind == DEMO and not episode.success:
            if cfg.failed_demos == 'skip':
                continue
            episode.kind = ROLLOUT
        kept.append(episode)
    if not kept:
        raise DataError('every demonstration is marked unsuccessful (attr success=False) and '
                        'data.failed_demos is skip; record successful demos or set '
                        'data.failed_demos=rollout')
    shapes = {e.image_shape for e in kept}
    if len(shapes) > 1:
        raise DataError(f'episodes have different image shapes {sorted(shapes)}; export them '
                        'from the same cameras')
    return kept


def split_episodes(episodes: list[Episode], val: float, seed: int) -> Split:
    """Hold out whole episodes: `val` >= 1 is a count, < 1 a fraction (at least one episode
    when there are two or more)."""
    count = int(val) if val >= 1 else int(round(val * len(episodes)))
    if val > 0 and count == 0 and len(episodes) > 1:
        count = 1
    if count >= len(episodes):
        raise DataError(f'data.val_episodes={val} holds out {count} of {len(episodes)} episodes '
                        'and leaves none to train on; lower it or add episodes')
    order = np.random.default_rng(seed).permutation(len(episodes))
    held = set(order[:count].tolist())
    return Split([e for i, e in enumerate(episodes) if i not in held],
                 [e for i, e in enumerate(episodes) if i in held])


def statistics_of(episodes: list[Episode]) -> DatasetStatistics:
    return compute_statistics(np.concatenate([e.actions for e in episodes]),
                              np.concatenate([e.qpos for e in episodes]))


class TrainingData:
    """The training side: windows, the mix, statistics and batch assembly."""

    def __init__(self, cfg: DataConfig, layout: L.LatentLayout = L.ALOHA_LAYOUT):
        self.cfg, self.layout = cfg, layout
        episodes = load_episodes(cfg)
        self.split = split_episodes(episodes, cfg.val_episodes, cfg.split_seed)
        self.statistics = (load_statistics(cfg.statistics) if cfg.statistics
                           else statistics_of(self.split.train))
        self.mix = SampleMix(self.split.train, MixConfig(
            demo_sampling_prob=cfg.demo_sampling_prob,
            success_sampling_prob=cfg.success_sampling_prob,
            demos_as_success_rollouts=cfg.demos_as_success_rollouts,
            world_model_prob=cfg.world_model_prob))
        self.returns = {id(e): episode_returns(e, cfg.gamma) for e in episodes}
        self.instructions = sorted({e.instruction for e in episodes})

    def describe(self) -> dict:
        train, val = self.split.train, self.split.val
        return {'train_episodes': [str(e.path) for e in train],
                'val_episodes': [str(e.path) for e in val],
                'train_steps': int(sum(e.length for e in train)),
                'kinds': {kind: sum(e.kind == kind for e in train) for kind in (DEMO, ROLLOUT)},
                'successes': int(sum(e.success for e in train)),
                'instructions': self.instructions,
                'sample_mix': self.mix.proportions()}

    def write_statistics(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.statistics.to_json_dict(), indent=2) + '\n')
        return path

    def normalized(self, episode: Episode, t: int) -> dict:
        """Model-unit targets of one window: proprio, actions, future_proprio, value."""
        w = window(episode, t, self.returns[id(episode)])
        stats = self.statistics
        return {'proprio': stats.proprio.normalize(w.proprio),
                'actions': stats.actions.normalize(w.actions),
                'future_proprio': stats.proprio.normalize(w.future_proprio),
                'value': w.value, 'future_t': w.future_t}

    def assemble(self, rows: list[tuple[Episode, int]], image_latents: torch.Tensor,
                 blank: torch.Tensor) -> torch.Tensor:
        """x0 (B, C, T, H, W): blank frame 0, camera frames (B, frames, C, H, W) and the
        normalised injected modalities."""
        layout = self.layout
        batch = len(rows)
        channels, height, width = blank.shape
        x0 = torch.zeros(batch, channels, layout.num_frames, height, width)
        x0[:, :, 0] = blank.float()
        roles = [i for i, role in enumerate(layout.roles) if role not in L.INJECTED_ROLES]
        x0[:, :, roles] = image_latents.float().permute(0, 2, 1, 3, 4)
        targets = [self.normalized(episode, t) for episode, t in rows]

        def stack(key):
            return torch.tensor(np.stack([tg[key] for tg in targets]), dtype=torch.float32)
        return inject_state(layout, x0, stack('proprio'), stack('actions'),
                            stack('future_proprio'), stack('value'))


def validation_rows(episodes: list[Episode], count: int) -> list[tuple[Episode, int]]:
    """`count` (episode, t) pairs spread evenly over the held-out episodes' steps."""
    if not episodes or count <= 0:
        return []
    steps = [(e, int(t)) for e in episodes for t in e.sample_steps]
    picks = np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int)
    return [steps[i] for i in picks]
