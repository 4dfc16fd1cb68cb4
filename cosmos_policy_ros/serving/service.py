"""The model behind the policy server: validated Query -> action chunk, one at a time.

`PolicyService` wraps anything with CosmosPolicy's `predict(observation, num_steps, seeds,
decode_future)` (tests and benchmarks pass stand-ins) and keeps the seed sequence of the policy
node: a query without a seed gets `seed + number of queries so far`.
"""
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosmos_policy_ros.names import (
    CAMERAS,
    CHUNK_LENGTH,
    CONTROL_HZ,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    STATE_DIM,
)
from cosmos_policy_ros.serving.schema import Limits, Query, RequestError

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class InferenceResult:
    actions: np.ndarray          # (50, 14) robot units
    value: float
    future_images: dict | None   # camera -> H x W x 3 uint8
    seed: int
    num_steps: int
    timings: dict                # model stage -> seconds
    infer_s: float               # wall time of predict


def load_policy(preset: str | None = None, checkpoint: str | None = None,
                statistics: str | None = None, text: str | None = None, device: str = 'cpu',
                dtype: str = 'float32'):
    """CosmosPolicy as the policy node loads it (statistics: given, else the checkpoint's,
    else config/sim_statistics.json). preset None: '2b' for a released .pt, the checkpoint's
    own for a checkpoint directory, 'tiny' (UNTRAINED random weights) without a checkpoint."""
    from cosmos_policy_ros.model.checkpoint import checkpoint_statistics
    from cosmos_policy_ros.model.policy import CosmosPolicy
    from cosmos_policy_ros.paths import share_path
    if preset is None:
        preset = '2b' if checkpoint and Path(checkpoint).suffix == '.pt' else 'tiny'
    statistics = (statistics or checkpoint_statistics(checkpoint)
                  or str(share_path('config', 'sim_statistics.json')))
    return CosmosPolicy.from_config(preset=preset, checkpoint=checkpoint or None,
                                    statistics=statistics, text=text, device=device,
                                    dtype=dtype)


class PolicyService:
    def __init__(self, model, *, num_steps: int = 10, seed: int = 0,
                 default_prompt: str | None = None, max_num_steps: int = 100,
                 decode_future: bool = False, image_size: int | None = None,
                 info: dict | None = None):
        from cosmos_policy_ros.model.preprocess import CLIENT_SIZE
        if not 1 <= num_steps <= max_num_steps:
            raise ValueError(f'num_steps {num_steps} must be in [1, max_num_steps '
                             f'{max_num_steps}]')
        self.model = model
        self.num_steps, self.seed, self.default_prompt = num_steps, seed, default_prompt
        self.decode_future = decode_future
        size = image_size or model.preset.image_size
        self.client_size = CLIENT_SIZE
        self.limits = Limits(image_sizes=((IMAGE_HEIGHT, IMAGE_WIDTH), (CLIENT_SIZE,) * 2,
                                          (size, size)), max_num_steps=max_num_steps)
        self.info = dict(info or {})
        self.queries = 0
        self._lock = threading.Lock()

    def metadata(self) -> dict:
        """Sent to every websocket client on connect (openpi: server metadata)."""
        return {'policy': 'cosmos_policy', 'protocol_version': PROTOCOL_VERSION,
                'action_horizon': CHUNK_LENGTH, 'action_dim': STATE_DIM,
                'control_hz': CONTROL_HZ, 'cameras': list(CAMERAS),
                'image_sizes': [list(hw) for hw in sorted(self.limits.image_sizes)],
                'client_image_size': self.client_size,
                'state': '[left 6 joints, left gripper, right 6, right gripper]: rad, grippers '
                         'normalised 0 closed .. 1 open',
                'num_steps': self.num_steps, 'max_num_steps': self.limits.max_num_steps,
                'decode_future': self.decode_future,
                'default_prompt': self.default_prompt or '', **self.info}

    def infer(self, query: Query, decode_future: bool | None = None) -> InferenceResult:
        """Run the model on one query (thread-safe: one inference at a time)."""
        from cosmos_policy_ros.model.policy import Observation
        decode = query.decode_future if decode_future is None else decode_future
        if decode and not self.decode_future:
            raise RequestError('decode_future', 'this server does not decode future images '
                               '(start it with --decode-future)')
        prompt = query.prompt or self.default_prompt
        if prompt is None:
            raise RequestError('prompt', 'missing, and the server has no default prompt '
                               '(start it with --task or --prompt)')
        num_steps = query.num_steps or self.num_steps
        with self._lock:
            seed = query.seed if query.seed is not None else self.seed + self.queries
            self.queries += 1
            start = time.perf_counter()
            out = self.model.predict(Observation(images=query.images, proprio=query.proprio,
                                                 task=prompt),
                                     num_steps=num_steps, seeds=seed, decode_future=decode)
            infer_s = time.perf_counter() - start
        future = None
        if decode and out.future_images:
            future = {cam: np.asarray(rgb[0] if rgb.ndim == 4 else rgb)
                      for cam, rgb in out.future_images.items()}
        return InferenceResult(actions=np.asarray(out.actions[0], dtype=np.float32),
                               value=float(out.value[0]), future_images=future, seed=seed,
                               num_steps=num_steps, timings=dict(out.timings or {}),
                               infer_s=infer_s)
