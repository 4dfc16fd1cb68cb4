"""Jumps inside an action chunk (ROS-free): a fault check before a chunk is accepted.

The safety gate limits each tick's step, so a chunk that leaps (a +1.5 rad point between two
neighbours, or a first point far from where the arm is) would still be followed, 0.1 rad per
tick, toward the leap. The reference pauses when an arm joint's target is more than 0.15 rad
from the measured position; here a whole chunk is rejected when its arm joints jump more than
a limit between consecutive points, or from the measured position to the point it starts at
(its first point in sync mode; in async mode the point due now, since the arm moved while the
chunk was inferred). Grippers are not checked (they open and close in a few ticks by design).
The limit is the controller's `max_jump_rad` (schemas.controller); benchmarks/chunk_jumps.py
measures what a trained policy's chunks do.
"""
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros import names


@dataclass(frozen=True)
class ChunkJump:
    consecutive: float            # largest arm-joint change between consecutive points [rad]
    consecutive_at: tuple         # (point k, vector index): the change from point k-1 to k
    first: float                  # largest arm-joint distance of the start point from the arm
    first_at: int                 # its vector index (-1: no measured position)
    start: int = 0                # the point the chunk starts at

    @property
    def largest(self) -> float:
        return max(self.consecutive, self.first)

    def reason(self, limit: float) -> str:
        """Why a chunk with these jumps is rejected under `limit` [rad] ('' if it is not)."""
        reasons = []
        if self.consecutive > limit:
            point, index = self.consecutive_at
            reasons.append(f'{names.VECTOR_NAMES[index]} jumps {self.consecutive:.3f} rad '
                           f'from point {point - 1} to {point}')
        if self.first > limit:
            reasons.append(f'{names.VECTOR_NAMES[self.first_at]} starts (point {self.start}) '
                           f'{self.first:.3f} rad from the measured position')
        if not reasons:
            return ''
        return '; '.join(reasons) + f' (max_jump_rad {limit})'


def chunk_jump(positions, measured=None, start: int = 0) -> ChunkJump:
    """The largest arm-joint jumps of a (points, 14) chunk in command units; `measured` is
    the arm's (14,) position when the chunk arrives (None: not known, not checked) and `start`
    the point it is compared with."""
    arm = list(names.ARM_JOINT_INDICES)
    positions = np.asarray(positions, dtype=np.float64)
    steps = np.abs(np.diff(positions[:, arm], axis=0))
    consecutive, consecutive_at = 0.0, (0, arm[0])
    if steps.size:
        point, column = np.unravel_index(int(np.argmax(steps)), steps.shape)
        consecutive, consecutive_at = float(steps[point, column]), (int(point) + 1,
                                                                     arm[column])
    first, first_at = 0.0, -1
    if measured is not None:
        distance = np.abs(positions[start, arm] - np.asarray(measured, dtype=np.float64)[arm])
        column = int(np.argmax(distance))
        first, first_at = float(distance[column]), arm[column]
    return ChunkJump(consecutive, consecutive_at, first, first_at, start)
