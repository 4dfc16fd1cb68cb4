"""Training step time per preset: latents from the frozen-VAE cache vs encoded on the fly.

    python benchmarks/train_step.py --episodes runs/demos/transfer_cube/hdf5 --presets tiny sim

Builds the real `Trainer` (random frozen VAE: the step time does not depend on its weights) on
the first --max-episodes recorded episodes and times --steps optimiser steps after one warm-up
step, once with `cache.enabled=true` (the cache is built first; its build time is reported
separately) and once with `cache.enabled=false` (every batch runs the VAE encoder on its 41-frame
sample videos). Prints a table and writes --out JSON.
"""
import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cosmos_policy_ros.training.config import config_from_dict
from cosmos_policy_ros.training.trainer import Trainer


def limited_episodes(source: Path, count: int, into: Path) -> Path:
    """A folder of links to the first `count` episode files of `source`."""
    files = sorted(source.glob('episode_*.hdf5'), key=lambda p: int(p.stem.split('_')[1]))
    if len(files) < 2:
        raise SystemExit(f'--episodes {source}: need at least 2 episode_*.hdf5 files')
    into.mkdir(parents=True, exist_ok=True)
    for path in files[:count]:
        (into / path.name).symlink_to(path.resolve())
    return into


def measure(preset: str, episodes: Path, work: Path, cached: bool, args) -> dict:
    config = config_from_dict({
        'name': f'bench_{preset}', 'output': str(work / f'run_{preset}_{cached}'),
        'preset': preset, 'allow_random_vae': True, 'threads': args.threads,
        'data': {'episodes': [str(episodes)], 'val_episodes': 1},
        'cache': {'enabled': cached, 'dir': str(work / 'cache'), 'draws': 1},
        'optim': {'steps': args.steps + 1, 'batch_size': args.batch_size, 'warmup_steps': 0},
        'val': {'every': 0, 'samples': 1}, 'checkpoint': {'every': 10 ** 9}})
    started = time.perf_counter()
    trainer = Trainer(config, progress=False)
    setup_s = time.perf_counter() - started
    trainer.train_step()                              # warm-up (allocations, first batch)
    times = []
    for _ in range(args.steps):
        tick = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - tick)
    params = sum(p.numel() for p in trainer.net.parameters())
    return {'preset': preset, 'cached': cached, 'dit_params': params,
            'step_s_median': statistics.median(times), 'step_s_all': times,
            'setup_s': setup_s, 'batch_size': args.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', default='runs/demos/transfer_cube/hdf5')
    parser.add_argument('--max-episodes', type=int, default=4)
    parser.add_argument('--presets', nargs='+', default=['tiny', 'sim'])
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default='runs/bench/train_step.json')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix='train_step_'))
    try:
        episodes = limited_episodes(Path(args.episodes), args.max_episodes, work / 'episodes')
        rows = [measure(preset, episodes, work, cached, args)
                for preset in args.presets for cached in (True, False)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f'{"preset":8} {"DiT params":>11} {"cached s/step":>14} {"on-the-fly s/step":>18} '
          f'{"speedup":>8}')
    for preset in args.presets:
        cached = next(r for r in rows if r['preset'] == preset and r['cached'])
        fly = next(r for r in rows if r['preset'] == preset and not r['cached'])
        print(f'{preset:8} {cached["dit_params"] / 1e6:10.2f}M {cached["step_s_median"]:14.3f} '
              f'{fly["step_s_median"]:18.3f} '
              f'{fly["step_s_median"] / cached["step_s_median"]:7.1f}x')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'rows': rows, 'threads': args.threads,
                               'cpu': platform.processor() or platform.machine(),
                               'torch': torch.__version__}, indent=1))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
