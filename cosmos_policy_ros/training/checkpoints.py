"""Training checkpoints: deployable model files + the state needed to resume exactly.

<run>/checkpoints/step_<N>/
    model.safetensors + config.yaml  (model.checkpoint format: 'dit' = the weights to deploy
                                       (the EMA when enabled), 'vae', and 'dit_train' = the
                                       raw weights when an EMA exists)
    dataset_statistics.json          (released format; the policy loads it with the weights)
    train_state.pt                   (optimizer state, step, RNG; tensors and plain containers
                                       only, read back with torch.load(weights_only=True))
A checkpoint is written into step_<N>.tmp and renamed when complete, so a crash or a full
disk leaves the previous one intact. <run>/best/ holds the model files of the checkpoint with
the best validation action error.
"""
import errno
import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError

# The statistics file name is the model's (model.checkpoint reads it beside the weights).
from cosmos_policy_ros.model.checkpoint import STATISTICS_FILE, save_checkpoint
from cosmos_policy_ros.model.config import ModelPreset

STATE_FILE = 'train_state.pt'


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions); the previous one is kept."""


def step_dir(run: Path, step: int) -> Path:
    return run / 'checkpoints' / f'step_{step:07d}'


def complete_checkpoints(run: Path) -> list[Path]:
    """Finished step directories, oldest first."""
    root = run / 'checkpoints'
    if not root.is_dir():
        return []
    found = [p for p in root.glob('step_*') if p.is_dir() and not p.name.endswith('.tmp')
             and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split('_')[1]))


def _write_dir(target: Path, write) -> None:
    """Run write(tmp_dir), then swap tmp_dir in for `target` (whole-directory atomicity)."""
    tmp = target.with_name(target.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        old = target.with_name(target.name + '.old')
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_model(directory: Path, modules: dict, preset: ModelPreset, extra: dict,
                 statistics: dict) -> None:
    save_checkpoint(directory, modules, preset, extra)
    if statistics:
        (directory / STATISTICS_FILE).write_text(json.dumps(statistics, indent=2) + '\n')


def save_model(target: Path, modules: dict, preset: ModelPreset, extra: dict,
               statistics: dict) -> Path:
    """A deployable model directory (weights, config, statistics), replaced atomically."""
    _write_dir(target, lambda tmp: _write_model(tmp, modules, preset, extra, statistics))
    return target


def save(run: Path, step: int, modules: dict, preset: ModelPreset, extra: dict,
         statistics: dict, train_state: dict, keep: int) -> Path:
    """Write step_<step> atomically; prune to the newest `keep` step checkpoints."""
    final = step_dir(run, step)

    def write(tmp: Path) -> None:
        _write_model(tmp, modules, preset, extra, statistics)
        torch.save(train_state, tmp / STATE_FILE)
    try:
        _write_dir(final, write)
    except (OSError, SafetensorError, RuntimeError) as exc:   # torch.save raises RuntimeError
        previous = complete_checkpoints(run)
        kept = (f'the previous checkpoint {previous[-1]} is intact' if previous else
                'no earlier checkpoint exists')
        full = getattr(exc, 'errno', None) == errno.ENOSPC or 'No space left' in str(exc)
        reason = 'the disk is full' if full else f'{type(exc).__name__}: {exc}'
        raise CheckpointWriteError(f'checkpoint at step {step} failed: {reason}; {kept}. Free '
                                   f'space under {run} and rerun with --resume') from None
    for old in complete_checkpoints(run)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(directory: Path) -> dict:
    return torch.load(directory / STATE_FILE, map_location='cpu', weights_only=True)
