"""Sample windows and the data mix, as the reference builds them (cosmos_policy.md §4-§5).

A sample is (episode, t): images + proprio at t, the action chunk actions[t : t+50] padded by
repeating the episode's last action, images + proprio at the future index min(t+50, T-1),
and the value target = the rescaled Monte-Carlo return at that future index.

Kinds: a demo sample asks for p(a, s', V | s) (policy); a rollout sample is a world-model
sample p(s', V | s, a) or a value sample p(V | s, a, s') with probability 1/2 each. The mix
draws demos with `demo_sampling_prob`, else rollouts (successes with
`success_sampling_prob` when both exist); within a group every step is equally likely.
With `demos_as_success_rollouts` (the released base policy) demos also serve as successful
rollouts: 50 % policy, 25 % world-model, 25 % value samples.
"""
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.model.layout import SampleKind
from cosmos_policy_ros.model.training import value_targets
from cosmos_policy_ros.names import CHUNK_LENGTH
from cosmos_policy_ros.training.episodes import DEMO, Episode, future_index


@dataclass(frozen=True)
class Window:
    """One sample's indices and targets (robot units; value in [-1, 1])."""
    t: int
    future_t: int
    proprio: np.ndarray          # (14,)
    actions: np.ndarray          # (chunk, 14)
    future_proprio: np.ndarray   # (14,)
    value: float


def action_chunk(actions: np.ndarray, t: int, chunk: int = CHUNK_LENGTH) -> np.ndarray:
    """actions[t : t+chunk], padded by repeating the episode's last action."""
    window = actions[t:t + chunk]
    if len(window) < chunk:
        window = np.concatenate([window, np.repeat(actions[-1:], chunk - len(window), 0)])
    return window


def episode_returns(episode: Episode, gamma: float) -> np.ndarray:
    """Rescaled returns per step: successes (and demos) with reward R, failures with 0."""
    reward = episode.reward if (episode.success or episode.reward > 0) else 0.0
    return value_targets(episode.length, reward=reward, gamma=gamma)


def window(episode: Episode, t: int, returns: np.ndarray,
           chunk: int = CHUNK_LENGTH) -> Window:
    if not 0 <= t < episode.length:
        raise IndexError(f'{episode.path}: step {t} outside 0..{episode.length - 1}')
    future = future_index(t, episode.length, chunk)
    return Window(t, future, episode.qpos[t], action_chunk(episode.actions, t, chunk),
                  episode.qpos[future], float(returns[future]))


@dataclass(frozen=True)
class MixConfig:
    demo_sampling_prob: float = 0.5
    success_sampling_prob: float = 0.5
    demos_as_success_rollouts: bool = True
    world_model_prob: float = 0.5          # of rollout samples; the rest are value samples

    def __post_init__(self):
        for name in ('demo_sampling_prob', 'success_sampling_prob', 'world_model_prob'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'data.{name} must be in [0, 1], got {value}')


class SampleMix:
    """Draws (episode index, t, kind) triples with the reference's proportions."""

    def __init__(self, episodes: list[Episode], mix: MixConfig):
        self.mix = mix
        demos = [i for i, e in enumerate(episodes) if e.kind == DEMO]
        rollouts = [i for i, e in enumerate(episodes) if e.kind != DEMO]
        successes = [i for i in rollouts if episodes[i].success]
        failures = [i for i in rollouts if not episodes[i].success]
        if mix.demos_as_success_rollouts:
            successes = demos + successes
        steps = [e.sample_steps for e in episodes]
        self.groups = {name: self._steps(members, steps)
                       for name, members in (('demo', demos), ('success', successes),
                                             ('failure', failures))}
        self.probs = self._group_probs()
        if not self.probs:
            raise ValueError('the data mix has nothing to draw from: no demonstrations and no '
                             'rollouts (or demo_sampling_prob excludes the only group present)')

    @staticmethod
    def _steps(members, steps) -> np.ndarray:
        if not members:
            return np.zeros((0, 2), dtype=np.int64)
        return np.concatenate([np.stack([np.full(len(steps[i]), i), steps[i]], 1)
                               for i in members]).astype(np.int64)

    def _group_probs(self) -> dict:
        mix, present = self.mix, {name: len(steps) > 0 for name, steps in self.groups.items()}
        rollouts = present['success'] or present['failure']
        p_demo = mix.demo_sampling_prob if (present['demo'] and rollouts) else float(
            present['demo'])
        p_success = (mix.success_sampling_prob if (present['success'] and present['failure'])
                     else float(present['success']))
        probs = {'demo': p_demo, 'success': (1 - p_demo) * p_success,
                 'failure': (1 - p_demo) * (1 - p_success)}
        return {name: p for name, p in probs.items() if p > 0}

    def draw(self, rng: np.random.Generator, count: int) -> list[tuple[int, int, SampleKind]]:
        names = list(self.probs)
        weights = np.array([self.probs[n] for n in names])
        picks = rng.choice(len(names), size=count, p=weights / weights.sum())
        out = []
        for pick in picks:
            group = names[pick]
            episode, t = self.groups[group][rng.integers(len(self.groups[group]))]
            if group == 'demo':
                kind = SampleKind.POLICY
            elif rng.random() < self.mix.world_model_prob:
                kind = SampleKind.WORLD_MODEL
            else:
                kind = SampleKind.VALUE
            out.append((int(episode), int(t), kind))
        return out

    def proportions(self) -> dict:
        """Expected share of each sample kind (for logs and the model card)."""
        demo = self.probs.get('demo', 0.0)
        rollout = 1.0 - demo
        return {SampleKind.POLICY.value: demo,
                SampleKind.WORLD_MODEL.value: rollout * self.mix.world_model_prob,
                SampleKind.VALUE.value: rollout * (1 - self.mix.world_model_prob)}
