"""`ship`: a real training checkpoint -> a model directory (weights to deploy, statistics,
lineage), read back by safetensors' own reader and loaded as a policy; a run continued from the
shipped model ships over it with the steps of both runs recorded (ROS-free, tiny preset)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from episode_files import image, train_config, write_dataset
from safetensors import safe_open

from cosmos_policy_ros.model.checkpoint import load_checkpoint
from cosmos_policy_ros.training import checkpoints
from cosmos_policy_ros.training.config import config_from_dict
from cosmos_policy_ros.training.ship import ShipError, ship
from cosmos_policy_ros.training.trainer import train

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def ship_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'cosmos_policy_ros.cli', 'ship', *args],
                          capture_output=True, text=True, timeout=120)


def test_ship_keeps_the_deployed_weights_and_records_the_lineage(tmp_path):
    data = write_dataset(tmp_path / 'episodes', episodes=2)
    first = config_from_dict(train_config(tmp_path / 'a', data, **{'optim.ema_decay': 0.9}))
    train(first, progress=False)
    source = checkpoints.step_dir(Path(first.output), 4)
    assert 'dit_train' in load_checkpoint(source).states     # an EMA run keeps both

    target = tmp_path / 'models' / 'tiny_policy'
    (target / 'README.md').parent.mkdir(parents=True)
    (target / 'README.md').write_text('model card\n')
    done = ship_cli(str(source), str(target))
    assert done.returncode == 0, done.stderr
    assert '4 steps in all' in done.stdout and "['dit_train']" in done.stdout

    # An independent reader: only the modules the policy loads, bit-equal to the source's.
    with safe_open(target / 'model.safetensors', 'pt') as shipped:
        keys = set(shipped.keys())
        assert {k.split('.')[0] for k in keys} == {'dit', 'vae'}
        source_states = load_checkpoint(source).states
        for key in keys:
            module, _, name = key.partition('.')
            assert torch.equal(shipped.get_tensor(key), source_states[module][name]), key
    assert json.loads((target / 'dataset_statistics.json').read_text()) == json.loads(
        (source / 'dataset_statistics.json').read_text())
    assert (target / 'README.md').read_text() == 'model card\n'          # the card is kept

    from cosmos_policy_ros.model.policy import CosmosPolicy, Observation
    policy = CosmosPolicy.from_config(checkpoint=target)
    obs = Observation(images={c: image(0, c, 0) for c in ('cam_high', 'cam_left_wrist',
                                                           'cam_right_wrist')},
                      proprio=np.zeros(14), task='transfer the red cube to the other arm')
    assert np.all(np.isfinite(policy.predict(obs, num_steps=1, seeds=0).actions))

    # Weights already there are replaced only when asked.
    refused = ship_cli(str(source), str(target))
    assert refused.returncode != 0 and '--force' in refused.stderr

    # A run continued from the shipped model ships over it: 4 + 2 steps, both runs named.
    second = config_from_dict(train_config(tmp_path / 'b', data, init=str(target), **{
        'optim.steps': 2, 'optim.decay_steps': 2, 'optim.ema_decay': 0.9}))
    train(second, progress=False)
    continued = checkpoints.step_dir(Path(second.output), 2)
    summary = ship(continued, target, force=True)
    assert summary['steps_in_all'] == 6 and summary['step'] == 2
    lineage = yaml.safe_load((target / 'config.yaml').read_text())['extra']['lineage']
    assert [entry['steps'] for entry in lineage] == [4, 2]
    assert lineage[0]['checkpoint'] == str(source) and lineage[1]['init'] == str(target)


def test_ship_refuses_what_it_cannot_ship_naming_the_fix(tmp_path):
    data = write_dataset(tmp_path / 'episodes', episodes=2)
    config = config_from_dict(train_config(tmp_path / 'a', data, **{'optim.steps': 2,
                                                                    'optim.decay_steps': 2}))
    train(config, progress=False)
    source = checkpoints.step_dir(Path(config.output), 2)
    with pytest.raises(ShipError, match='over the limit.*--max-mb'):
        ship(source, tmp_path / 'big', max_mb=0.001)
    with pytest.raises(ShipError, match='source: .*missing model.safetensors'):
        ship(tmp_path / 'nowhere', tmp_path / 'x')
    (source / 'dataset_statistics.json').unlink()
    with pytest.raises(ShipError, match='no dataset_statistics.json'):
        ship(source, tmp_path / 'x')
    assert not (tmp_path / 'big').exists() and not (tmp_path / 'x').exists()
