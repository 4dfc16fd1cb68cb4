"""Value ensembles -> one score per candidate, and the best-candidate rule (ROS-free).

As the reference planner: `majority_mean` keeps a candidate's value only if at least half of
its ensemble samples exceed `threshold` (then the mean of those samples, else 0); `mean` is the
plain average; `lcb` is mean - k * std (a pessimistic score). Ties go to the base-seed
candidate, so planning never replaces the plain policy's chunk without a better value.
"""
import numpy as np

AGGREGATIONS = ('majority_mean', 'mean', 'lcb')


def aggregate(samples, method: str = 'majority_mean', threshold: float = 0.05,
              lcb_k: float = 1.0) -> np.ndarray:
    """(N, E) value samples in [0, 1] -> (N,) scores in [0, 1]."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError(f'value samples must be (candidates, ensemble), got {samples.shape}')
    if not np.all(np.isfinite(samples)):
        raise ValueError('value samples contain non-finite numbers')
    if method == 'mean':
        scores = samples.mean(axis=1)
    elif method == 'lcb':
        scores = samples.mean(axis=1) - lcb_k * samples.std(axis=1)
    elif method == 'majority_mean':
        above = samples > threshold
        majority = above.mean(axis=1) >= 0.5
        kept = np.where(above, samples, 0.0).sum(axis=1) / np.maximum(above.sum(axis=1), 1)
        scores = np.where(majority, kept, 0.0)
    else:
        raise ValueError(f'aggregation {method!r} is not one of {list(AGGREGATIONS)}')
    return np.clip(scores, 0.0, 1.0)


def select_best(scores, base_index: int = 0) -> int:
    """Index of the highest score; the base candidate wins every tie."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f'scores must be a non-empty vector, got shape {scores.shape}')
    best = int(np.argmax(scores))
    return base_index if scores[base_index] >= scores[best] else best
