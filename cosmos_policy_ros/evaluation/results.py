"""Episode results, the success rate with a Wilson 95 % interval, JSON and plots (ROS-free)."""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class EpisodeResult:
    index: int
    seed: int
    success: bool
    max_reward: int
    sim_seconds: float                 # episode length in sim time when it ended
    success_time: float | None         # sim seconds into the episode of the first success
    wall_seconds: float
    chunks: list = field(default_factory=list)       # (50, 14) robot units, as predicted
    values: list = field(default_factory=list)       # predicted value per chunk
    qpos: np.ndarray | None = None     # (T, 14) proprio at each 25 Hz tick
    actions: np.ndarray | None = None  # (T, 14) executed targets (after the gate), robot units
    frames: dict = field(default_factory=dict)       # camera -> list of HxWx3 uint8 per tick
    frame_steps: list | None = None    # ticks of `frames` when not every tick (sparse rollout)
    video: list = field(default_factory=list)        # filmed cam_high per tick, when separate
    query_seconds: list = field(default_factory=list)

    def summary(self) -> dict:
        return {'index': self.index, 'seed': self.seed, 'success': self.success,
                'max_reward': self.max_reward, 'sim_seconds': round(self.sim_seconds, 3),
                'success_time': self.success_time, 'wall_seconds': round(self.wall_seconds, 2),
                'chunks': len(self.chunks),
                'values': [round(float(v), 4) for v in self.values],
                'query_seconds_mean': float(np.mean(self.query_seconds))
                if self.query_seconds else None}


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(results: list[EpisodeResult], meta: dict) -> dict:
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    rewards = [r.max_reward for r in results]
    return {**meta, 'episodes': len(results), 'successes': successes,
            'success_rate': successes / len(results) if results else 0.0,
            'success_rate_ci95': [low, high],
            'max_reward_histogram': {str(k): rewards.count(k) for k in range(5)},
            'seeds': [r.seed for r in results],
            'mean_wall_seconds': float(np.mean([r.wall_seconds for r in results]))
            if results else 0.0,
            'per_episode': [r.summary() for r in results]}


def line(result: EpisodeResult) -> str:
    when = f' at {result.success_time:.2f} s' if result.success_time is not None else ''
    return (f'episode {result.index:3d} seed {result.seed:6d}: '
            f'{"SUCCESS" if result.success else "failure"}{when}, max reward '
            f'{result.max_reward}/4, {result.sim_seconds:.1f} s sim, {len(result.chunks)} '
            f'chunks, {result.wall_seconds:.0f} s wall')


def write_json(summary: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + '\n')
    return path


def plot(summary: dict, path: Path) -> Path:
    """Running success rate with its interval, and the max-reward histogram."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    episodes = summary['per_episode']
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    if episodes:
        wins = np.cumsum([e['success'] for e in episodes])
        n = np.arange(1, len(episodes) + 1)
        bounds = np.array([wilson_interval(int(w), int(k)) for w, k in zip(wins, n)])
        axes[0].plot(n, wins / n, color='tab:green', label='success rate')
        axes[0].fill_between(n, bounds[:, 0], bounds[:, 1], color='tab:green', alpha=0.2,
                             label='95 % Wilson interval')
        axes[0].scatter(n, [e['success'] for e in episodes], s=8, color='k', alpha=0.4,
                        label='episode outcome')
    axes[0].set(ylim=(-0.05, 1.05), xlabel='episodes', title=f'{summary.get("task", "")}: '
                f'{summary["successes"]}/{summary["episodes"]} = {summary["success_rate"]:.0%}')
    axes[0].legend(loc='lower right', fontsize=8)
    histogram = summary['max_reward_histogram']
    axes[1].bar(list(histogram), list(histogram.values()), color='tab:blue')
    axes[1].set(xlabel='max reward reached (4 = success)', ylabel='episodes',
                title='task stages reached')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_video(frames: list, path: Path, fps: float = 25.0) -> Path:
    """mp4 (mp4v) of RGB frames with OpenCV."""
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f'cannot open a video writer for {path}')
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
