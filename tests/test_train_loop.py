"""`train`: checkpoints, exact resume, data-parallel equivalence and the failure modes, on a
tiny preset and real files (ROS-free)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from episode_files import TEST_PRESET, train_config, write_dataset, write_episode

from cosmos_policy_ros.model.checkpoint import load_checkpoint
from cosmos_policy_ros.model.config import ConfigError
from cosmos_policy_ros.training import checkpoints
from cosmos_policy_ros.training.checkpoints import CheckpointWriteError
from cosmos_policy_ros.training.config import config_from_dict, load_train_config
from cosmos_policy_ros.training.optim import lr_factor
from cosmos_policy_ros.training.trainer import TrainingError, train

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('episodes'), episodes=3)


def weights(run: Path, step: int) -> dict:
    return load_checkpoint(checkpoints.step_dir(run, step)).states['dit']


def test_lr_schedule_matches_the_release():
    cfg = config_from_dict({'optim': {'warmup_steps': 2000, 'decay_steps': 20000}}).optim
    assert lr_factor(0, cfg) == pytest.approx(1e-6)
    assert lr_factor(1000, cfg) == pytest.approx(1e-6 + (1 - 1e-6) / 2)
    assert lr_factor(2000, cfg) == pytest.approx(1.0)
    assert lr_factor(11000, cfg) == pytest.approx(0.65)
    assert lr_factor(20000, cfg) == pytest.approx(0.3)
    assert lr_factor(20001, cfg) == pytest.approx(0.06)     # the 5x drop of the second cycle
    assert lr_factor(10 ** 7, cfg) == pytest.approx(0.06)


def test_train_writes_checkpoints_logs_and_a_loadable_policy(tmp_path, dataset):
    config = config_from_dict(train_config(tmp_path, dataset, **{'val.every': 2}))
    result = train(config, progress=False)
    run = Path(config.output)
    assert result.status == 'done' and result.step == 4
    assert [p.name for p in checkpoints.complete_checkpoints(run)] == ['step_0000002',
                                                                       'step_0000004']
    for name in ('train.csv', 'val.csv', 'learning_curves.png', 'config.yaml', 'data.json',
                 'dataset_statistics.json'):
        assert (run / name).is_file(), name
    assert set(result.val) >= {'action_l1_left_arm', 'action_l1_right_arm', 'value_abs_err',
                               'future_proprio_l1_arm', 'future_latent_mse'}
    assert np.isfinite(result.val['action_l1_arms']) and result.val['samples'] == 4
    # best/ loads as a policy with its own statistics and predicts finite chunks.
    from episode_files import image

    from cosmos_policy_ros.model.policy import CosmosPolicy, Observation
    policy = CosmosPolicy.from_config(checkpoint=run / 'best')
    stats = policy.statistics.actions
    assert stats.min.shape == (14,) and np.all(stats.max > stats.min)
    obs = Observation(images={c: image(0, c, 0) for c in ('cam_high', 'cam_left_wrist',
                                                           'cam_right_wrist')},
                      proprio=np.zeros(14), task='transfer the red cube to the other arm')
    out = policy.predict(obs, num_steps=1, seeds=0)
    assert out.actions.shape == (1, 50, 14) and np.all(np.isfinite(out.actions))


def planning_run_config(tmp_path, dataset, first_seed: int, **overrides):
    """A V(s') run on the demos + 3 failed episodes used as rollouts, both kinds held out."""
    failures = tmp_path / 'failures'
    for i in range(3):
        write_episode(failures / f'episode_{i}.hdf5', seed=first_seed + i, success=False)
    return config_from_dict(train_config(tmp_path, dataset, **{
        'data.rollouts': [], 'data.failed_demos': 'rollout', 'data.value_mode': 'v_sprime',
        'data.val_episodes': 4, 'data.split_seed': 1,
        'data.episodes': [str(dataset), str(failures)], **overrides}))


def test_planning_model_run_validates_its_value_given_the_true_future(tmp_path, dataset):
    """A V(s') run on demos + failed rollouts: validation samples the value head as the
    planner does and reports its error on the held-out failures and on the rest apart."""
    config = planning_run_config(tmp_path, dataset, 10, **{
        'data.demo_sampling_prob': 0.1, 'val.every': 4})
    result = train(config, progress=False)
    described = json.loads((Path(config.output) / 'data.json').read_text())
    held_out = {Path(p).parent.name for p in described['val_episodes']}
    assert held_out == {dataset.name, 'failures'}       # both kinds held out (split_seed 1)
    for key in ('value_given_future_abs_err', 'value_given_future_abs_err_failures',
                'value_given_future_abs_err_others'):
        assert 0.0 <= result.val[key] <= 1.0, key
    header = (Path(config.output) / 'val.csv').read_text().splitlines()[0].split(',')
    assert 'value_given_future_abs_err_failures' in header


def test_a_run_without_policy_samples_keeps_the_best_value_given_the_future(tmp_path, dataset):
    """A planning model trained on rollouts alone (no policy samples) is kept by the value
    error the planner depends on; its action error says nothing about it."""
    config = planning_run_config(tmp_path, dataset, 20, **{
        'data.demo_sampling_prob': 0.0, 'val.every': 2, 'optim.steps': 6})
    result = train(config, progress=False)
    described = json.loads((Path(config.output) / 'data.json').read_text())
    assert described['sample_mix']['policy'] == 0.0
    rows = list(csv.DictReader((Path(config.output) / 'val.csv').open()))
    assert len(rows) == 3
    best = yaml.safe_load((result.best / 'config.yaml').read_text())['extra']
    chosen = min(rows, key=lambda row: float(row['value_given_future_abs_err']))
    assert best['step'] == int(chosen['step'])
    assert best['val']['value_given_future_abs_err'] == \
        pytest.approx(float(chosen['value_given_future_abs_err']))


def test_resume_is_bit_exact(tmp_path, dataset):
    """4 steps straight == 2 steps, stop, --resume, 2 more (same batches, noise, optimiser)."""
    straight = config_from_dict(train_config(tmp_path / 'a', dataset,
                                             **{'cache.dir': str(tmp_path / 'cache')}))
    train(straight, progress=False)
    halves = train_config(tmp_path / 'b', dataset, **{'cache.dir': str(tmp_path / 'cache'),
                                                      'optim.steps': 2})
    train(config_from_dict(halves), progress=False)
    halves['optim']['steps'] = 4
    result = train(config_from_dict(halves), resume=True, progress=False)
    assert result.step == 4
    a, b = weights(tmp_path / 'a' / 'run', 4), weights(tmp_path / 'b' / 'run', 4)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows_a = (tmp_path / 'a' / 'run' / 'train.csv').read_text().splitlines()
    rows_b = (tmp_path / 'b' / 'run' / 'train.csv').read_text().splitlines()
    assert [r.split(',')[:2] for r in rows_a] == [r.split(',')[:2] for r in rows_b]  # losses


def test_ddp_two_processes_take_the_single_process_step(tmp_path, dataset):
    """torchrun --nproc-per-node 2 (gloo) on the same global batch: same losses, same weights."""
    single = train_config(tmp_path / 'one', dataset, **{'cache.dir': str(tmp_path / 'cache'),
                                                        'optim.steps': 3, 'log_every': 1})
    train(config_from_dict(single), progress=False)
    double = train_config(tmp_path / 'two', dataset, **{'cache.dir': str(tmp_path / 'cache'),
                                                        'optim.steps': 3, 'log_every': 1})
    path = tmp_path / 'ddp.yaml'
    path.write_text(yaml.safe_dump(double))
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node',
                             '2', '--master-addr', '127.0.0.1', '--master-port', '29517', '-m',
                             'cosmos_policy_ros.cli', 'train', str(path), '--no-progress'],
                            capture_output=True, text=True, timeout=400, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    one, two = tmp_path / 'one' / 'run', tmp_path / 'two' / 'run'

    def losses(run):
        rows = (run / 'train.csv').read_text().splitlines()
        header = rows[0].split(',')
        return np.array([float(r.split(',')[header.index('loss')]) for r in rows[1:]])
    np.testing.assert_allclose(losses(two), losses(one), rtol=1e-5)
    a, b = weights(one, 3), weights(two, 3)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path, dataset):
    config = config_from_dict(train_config(tmp_path, dataset, **{
        'optim.lr': 1e30, 'optim.steps': 40, 'optim.warmup_steps': 0, 'checkpoint.every': 1,
        'optim.grad_clip': 1e30}))
    with pytest.raises(TrainingError, match=r'non-finite loss .* at step \d+; batch episodes: '
                                            r'episode_\d\.hdf5@t=\d+') as error:
        train(config, progress=False)
    step = int(str(error.value).split('at step ')[1].split(';')[0])
    kept = checkpoints.complete_checkpoints(Path(config.output))
    assert kept and int(kept[-1].name.split('_')[1]) == step       # the last good step
    assert all(torch.isfinite(v).all() for v in weights(Path(config.output), step).values()
               if v.is_floating_point())


def test_init_checkpoint_with_another_preset_is_refused(tmp_path, dataset):
    train(config_from_dict(train_config(tmp_path / 'a', dataset, **{'optim.steps': 2})),
          progress=False)
    wider = {**TEST_PRESET, 'dit': {**TEST_PRESET['dit'], 'model_channels': 64}}
    config = config_from_dict(train_config(tmp_path / 'b', dataset, preset=wider,
                                           init=str(tmp_path / 'a' / 'run' / 'best')))
    with pytest.raises(ConfigError, match=r'another DiT .* model_channels: 32 vs 64'):
        train(config, progress=False)


def test_config_errors_name_the_field(tmp_path, dataset):
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump({'preset': 'sim', 'optim': {'stepz': 3}}))
    with pytest.raises(ConfigError, match=r"unknown field 'stepz' \(did you mean 'steps'\?\)"):
        load_train_config(path)
    with pytest.raises(ConfigError, match='override'):
        load_train_config(path, ['optim.steps'])
    good = tmp_path / 'good.yaml'
    good.write_text(yaml.safe_dump({'preset': 'sim'}))
    assert load_train_config(good, ['loss.action_weight=10']).loss.action_weight == 10
    with pytest.raises(ConfigError, match=r'loss.action_weight must be > 0'):
        load_train_config(good, ['loss.action_weight=0'])
    empty = tmp_path / 'empty'
    empty.mkdir()
    from cosmos_policy_ros.training.episodes import EpisodeError
    with pytest.raises(EpisodeError, match='no episode files'):
        train(config_from_dict(train_config(tmp_path, empty)), progress=False)
    with pytest.raises(ConfigError, match='vae'):
        train(config_from_dict(train_config(tmp_path, dataset, allow_random_vae=False)),
              progress=False)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, dataset):
    mount = tmp_path / 'small'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1800k', 'tmpfs', str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f'cannot mount a small tmpfs to fill up (needs root): {done.stderr.strip()}')
    try:
        config = config_from_dict(train_config(tmp_path, dataset, output=str(mount / 'run'),
                                               **{'optim.steps': 8, 'checkpoint.every': 1}))
        with pytest.raises(CheckpointWriteError, match='disk is full.*previous checkpoint '
                                                       r'.*step_\d+ is intact'):
            train(config, progress=False)
        kept = checkpoints.complete_checkpoints(mount / 'run')
        assert kept, 'the first checkpoint fits and must survive'
        load_checkpoint(kept[-1])                  # still a complete, loadable checkpoint
        assert not list((mount / 'run' / 'checkpoints').glob('*.tmp'))
    finally:
        subprocess.run(['umount', str(mount)], check=False)
