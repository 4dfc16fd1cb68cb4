"""Ship a training checkpoint as a model directory loadable by name (models/<name>/).

A training checkpoint (training/checkpoints.py) holds the deployable weights ('dit': the EMA
when one was kept, 'vae'), the raw training weights ('dit_train', only needed to resume) and
the statistics. Shipping keeps what the policy loads, drops 'dit_train' (a third of the file),
copies the statistics and records where the weights came from, so a model continued from an
earlier shipped model says how many steps it has in all. Files other than the weights, config
and statistics in the target (the model card, its figures and videos) are left alone.
"""
import json
import shutil
from pathlib import Path

import yaml

from cosmos_policy_ros.model.checkpoint import (
    CONFIG_FILE,
    STATISTICS_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)

SHIPPED_MODULES = ('dit', 'vae')


class ShipError(ValueError):
    """The source cannot be shipped to the target as asked."""


def lineage(extra: dict, source: Path) -> list[dict]:
    """The runs these weights came through, oldest first: the lineage recorded in the
    checkpoint the run started from (when it was shipped by this function), else that
    checkpoint's own step, then this run."""
    entry = {'checkpoint': str(source), 'steps': int(extra.get('step', 0))}
    init = str((extra.get('train_config') or {}).get('init') or '')
    earlier = []
    if init and (Path(init) / CONFIG_FILE).is_file():
        init_extra = (yaml.safe_load((Path(init) / CONFIG_FILE).read_text()) or {}).get(
            'extra') or {}
        earlier = list(init_extra.get('lineage') or [])
        if not earlier and init_extra.get('step') is not None:
            earlier = [{'checkpoint': init, 'steps': int(init_extra['step'])}]
    if init:
        entry['init'] = init
    return earlier + [entry]


def ship(source: str | Path, target: str | Path, force: bool = False,
         max_mb: float = 40.0) -> dict:
    """Write target/{model.safetensors, config.yaml, dataset_statistics.json} from the
    training checkpoint `source`; returns a summary {target, megabytes, steps_in_all, ...}."""
    source, target = Path(source), Path(target)
    try:
        loaded = load_checkpoint(source)
    except CheckpointError as exc:
        raise ShipError(f'source: {exc}') from None
    missing = [name for name in SHIPPED_MODULES if name not in loaded.states]
    if missing:
        raise ShipError(f'source {source} has no {missing} weights (it has '
                        f'{sorted(loaded.states)}): ship a checkpoint written by '
                        '`cosmos-policy-ros train`')
    statistics = source / STATISTICS_FILE
    if not statistics.is_file():
        raise ShipError(f'source {source} has no {STATISTICS_FILE}: the policy needs the '
                        'statistics its actions were normalised with')
    if (target / WEIGHTS_FILE).exists() and not force:
        raise ShipError(f'target {target} already holds weights: pass --force to replace them '
                        '(the model card and other files there are kept)')
    states = {name: loaded.states[name] for name in SHIPPED_MODULES}
    megabytes = sum(t.numel() * t.element_size() for s in states.values()
                    for t in s.values()) / 2**20
    if megabytes > max_mb:
        raise ShipError(f'the shipped weights would be {megabytes:.1f} MB, over the limit of '
                        f'{max_mb:g} MB (--max-mb): models/ holds small checkpoints only')
    extra = dict(loaded.extra)
    extra['lineage'] = lineage(extra, source)
    steps_in_all = sum(entry['steps'] for entry in extra['lineage'])
    extra['steps_in_all'] = steps_in_all
    target.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, states, loaded.preset, extra)
    shutil.copyfile(statistics, target / STATISTICS_FILE)
    json.loads((target / STATISTICS_FILE).read_text())      # readable as copied
    load_checkpoint(target)                                  # and the weights load back
    return {'target': str(target), 'megabytes': round(megabytes, 2), 'step': extra.get('step'),
            'steps_in_all': steps_in_all, 'dropped': sorted(set(loaded.states) - set(states))}
