"""Zero-order-hold resampling of timestamped streams onto a fixed-rate grid (ROS-free)."""
import numpy as np


class ResampleError(ValueError):
    """The sources do not overlap in time, so no grid step has data from all of them."""


def common_grid(first_last: dict, fps: float) -> np.ndarray:
    """int64 ns grid at `fps` from the moment every source has a message to the moment the
    first source ends (no step holds a source past its last message).

    `first_last` maps source name -> (first stamp ns, last stamp ns).
    """
    if not first_last:
        raise ResampleError('no sources to resample')
    start = max(first for first, _ in first_last.values())
    end = min(last for _, last in first_last.values())
    if end < start:
        late = max(first_last, key=lambda name: first_last[name][0])
        early = min(first_last, key=lambda name: first_last[name][1])
        raise ResampleError(f'sources do not overlap: {late!r} starts at {start} ns after '
                            f'{early!r} ended at {end} ns; record longer or check the topics')
    step_ns = 1e9 / fps
    count = int(np.floor((end - start) / step_ns)) + 1
    return start + np.round(np.arange(count) * step_ns).astype(np.int64)


def hold_indices(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each grid time, the index of the newest stamp at or before it (stamps sorted).

    Every grid time must be at or after stamps[0] (common_grid guarantees it).
    """
    stamps = np.asarray(stamps, dtype=np.int64)
    if stamps.size == 0:
        raise ResampleError('a source has no messages')
    if np.any(np.diff(stamps) < 0):
        raise ResampleError('stamps must be sorted')
    index = np.searchsorted(stamps, grid, side='right') - 1
    if np.any(index < 0):
        raise ResampleError(f'grid starts at {grid[0]} ns, before the first stamp {stamps[0]} ns')
    return index
