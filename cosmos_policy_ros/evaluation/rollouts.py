"""Evaluation episodes as rollout HDF5 files: the planning model's training data.

The reference's rollout layout (cosmos_policy.md §8): /observations/qpos (T, 14) and /action
(T, 14) robot units at 25 Hz, JPEG frames per step in the top-level variable-length datasets
primary_images_jpeg (cam_high), wrist_left_images_jpeg, wrist_right_images_jpeg, and attrs
success, success_score, policy_name, task_description (plus seed, sim, fps). Read back by
training.episodes as kind 'rollout'. Rollouts rendered every k-th tick (frame_steps) keep one
row per step, empty where no frame was rendered, and list the rendered steps in /frame_steps
(our extension; the reference's reader expects every row filled).
"""
import os
from pathlib import Path

import h5py
import numpy as np

from cosmos_policy_ros.training.episodes import ROLLOUT_JPEG_KEYS, frame_steps_valid


def write_rollout(path: str | Path, qpos: np.ndarray, actions: np.ndarray, frames: dict,
                  success: bool, instruction: str, policy_name: str, seed: int,
                  success_score: float | None = None, jpeg_quality: int = 90,
                  frame_steps=None, attrs: dict | None = None) -> Path:
    """frames: {camera: images}, one per step, or one per entry of `frame_steps`; attrs:
    extra file attributes (e.g. max_reward)."""
    import cv2
    path = Path(path)
    qpos, actions = np.asarray(qpos, np.float32), np.asarray(actions, np.float32)
    steps = len(actions)
    if qpos.shape != (steps, 14) or actions.shape != (steps, 14) or steps == 0:
        raise ValueError(f'rollout {path}: qpos {qpos.shape} and actions {actions.shape} must '
                         'both be (T, 14) with T >= 1')
    rows = np.arange(steps) if frame_steps is None else np.asarray(frame_steps, np.int64)
    if not frame_steps_valid(rows, steps):
        raise ValueError(f'rollout {path}: frame_steps must be increasing steps in '
                         f'0..{steps - 1}, got {rows[:5].tolist()}')
    for camera in ROLLOUT_JPEG_KEYS:
        if len(frames.get(camera, ())) != len(rows):
            raise ValueError(f'rollout {path}: {camera} has {len(frames.get(camera, ()))} '
                             f'frames for {len(rows)} rendered steps; record every camera at '
                             'each of them')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    with h5py.File(tmp, 'w') as f:
        f.attrs.update({'sim': True, 'fps': 25.0, 'success': bool(success),
                        'success_score': float(success if success_score is None
                                               else success_score),
                        'policy_name': policy_name, 'task_description': instruction,
                        'seed': int(seed), **(attrs or {})})
        f.create_dataset('observations/qpos', data=qpos)
        f.create_dataset('action', data=actions)
        if frame_steps is not None:
            f.create_dataset('frame_steps', data=rows.astype(np.int32))
        for camera, key in ROLLOUT_JPEG_KEYS.items():
            data = f.create_dataset(key, (steps,), dtype=h5py.vlen_dtype(np.uint8))
            for step, image in zip(rows.tolist(), frames[camera]):
                ok, buffer = cv2.imencode('.jpg', np.ascontiguousarray(image),
                                          [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                if not ok:
                    raise ValueError(f'rollout {path}: JPEG encoding failed ({camera}, {step})')
                data[step] = buffer.reshape(-1)
    os.replace(tmp, path)
    return path
