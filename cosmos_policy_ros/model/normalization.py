"""Dataset statistics JSON (the released format) and min-max normalisation to [-1, 1].

Format (shared/reference/cosmos_policy.md §8): keys actions_{min,max,mean,std,median} and
proprio_{min,max,mean,std,median}, each a list of 14 floats. Only min/max are used to
normalise: x' = 2 (x - min) / (max - min) - 1.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosmos_policy_ros.names import STATE_DIM, VECTOR_NAMES

GROUPS = ('actions', 'proprio')
STATS = ('min', 'max', 'mean', 'std', 'median')


class StatisticsError(ValueError):
    """A statistics file or array is missing a key, has the wrong length or a zero range."""


@dataclass(frozen=True)
class Range:
    """Per-dimension statistics of one group (actions or proprio), float64 (dim,) arrays."""
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    median: np.ndarray

    def normalize(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return 2.0 * (x - self.min) / (self.max - self.min) - 1.0

    def unnormalize(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return (x + 1.0) / 2.0 * (self.max - self.min) + self.min


@dataclass(frozen=True)
class DatasetStatistics:
    actions: Range
    proprio: Range

    def to_json_dict(self) -> dict:
        return {f'{group}_{stat}': getattr(getattr(self, group), stat).tolist()
                for group in GROUPS for stat in STATS}


def _dim_name(i: int, dim: int) -> str:
    return VECTOR_NAMES[i] if dim == STATE_DIM else str(i)


def _check_range(group: str, stats: dict, where: str, dim: int) -> Range:
    low, high = stats['min'], stats['max']
    for name, values in stats.items():
        if not np.all(np.isfinite(values)):
            raise StatisticsError(f'{where}: {group}_{name} has non-finite values; recompute the '
                                  'statistics from clean data')
    flat = np.flatnonzero(high <= low)
    if flat.size:
        names = [_dim_name(int(i), dim) for i in flat]
        raise StatisticsError(
            f'{where}: {group}_max must exceed {group}_min in every dimension, but not for '
            f'{names} (min==max would divide by zero); record data in which those joints move, '
            f'or widen the range in the file')
    return Range(**stats)


def statistics_from_dict(data: dict, where: str = 'statistics',
                         dim: int = STATE_DIM) -> DatasetStatistics:
    if not isinstance(data, dict):
        raise StatisticsError(f'{where}: expected a JSON object, got {type(data).__name__}')
    groups = {}
    for group in GROUPS:
        stats = {}
        for stat in STATS:
            key = f'{group}_{stat}'
            if key not in data:
                raise StatisticsError(f'{where}: missing key {key!r}; a statistics file needs '
                                      f'{[f"{g}_{s}" for g in GROUPS for s in STATS]}')
            try:
                values = np.asarray(data[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise StatisticsError(f'{where}: {key} must be a list of {dim} numbers') from None
            if values.shape != (dim,):
                raise StatisticsError(f'{where}: {key} must have {dim} values (one per joint of '
                                      f'the 14-d layout), got shape {values.shape}')
            stats[stat] = values
        groups[group] = _check_range(group, stats, where, dim)
    return DatasetStatistics(**groups)


def load_statistics(path: str | Path) -> DatasetStatistics:
    path = Path(path)
    if not path.is_file():
        raise StatisticsError(f'statistics file {path} does not exist; export a dataset (which '
                              'writes dataset_statistics.json) or pass the released '
                              'aloha_dataset_statistics.json')
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StatisticsError(f'{path}: not valid JSON ({exc})') from None
    return statistics_from_dict(data, where=str(path))


def _range_of(values: np.ndarray, name: str) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != STATE_DIM or values.shape[0] == 0:
        raise StatisticsError(f'{name} must be a non-empty (N, {STATE_DIM}) array, got shape '
                              f'{values.shape}')
    if not np.all(np.isfinite(values)):
        raise StatisticsError(f'{name} contains NaN or inf; drop the bad samples first')
    return {'min': values.min(0), 'max': values.max(0), 'mean': values.mean(0),
            'std': values.std(0), 'median': np.median(values, axis=0)}


def compute_statistics(actions: np.ndarray, proprio: np.ndarray) -> DatasetStatistics:
    """Statistics of (N,14) action and proprio arrays (all samples of a dataset)."""
    return DatasetStatistics(
        actions=_check_range('actions', _range_of(actions, 'actions'), 'computed', STATE_DIM),
        proprio=_check_range('proprio', _range_of(proprio, 'proprio'), 'computed', STATE_DIM))


def write_statistics(path: str | Path, actions: np.ndarray,
                     proprio: np.ndarray) -> DatasetStatistics:
    """Compute statistics of (N,14) arrays and write them in the released JSON format."""
    stats = compute_statistics(actions, proprio)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats.to_json_dict(), indent=2) + '\n')
    return stats
