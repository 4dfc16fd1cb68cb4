"""`train-vae`: colour-balanced loss, starting from a checkpoint, resuming, and a VAE that the
policy trainer loads, on the tiny preset and real episode files (ROS-free)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from episode_files import TEST_PRESET, write_dataset

from cosmos_policy_ros.model.checkpoint import load_checkpoint
from cosmos_policy_ros.model.config import ConfigError, preset_from_dict
from cosmos_policy_ros.training.build import load_vae
from cosmos_policy_ros.training.color_balance import color_index, color_weights, pixel_weights
from cosmos_policy_ros.training.vae_trainer import VaeTrainer, load_vae_config

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('episodes'), episodes=3)


def write_config(tmp_path, dataset, name='vae', **extra) -> str:
    config = {'name': name, 'output': str(tmp_path / name), 'preset': TEST_PRESET,
              'threads': 1, 'single_frame_steps': 2, 'groups': 1, 'val_every': 2,
              'val_images': 4, 'data': {'episodes': [str(dataset)], 'val_episodes': 1},
              'optim': {'steps': 4, 'batch_size': 2, 'warmup_steps': 1, 'decay_steps': 4},
              'checkpoint': {'every': 2}, **extra}
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_rare_colours_weigh_more_and_the_common_one_weighs_one():
    frames = np.full((10, 16, 16, 3), 90, np.uint8)
    frames[:, :2, :2] = (220, 30, 30)                     # 4 of 256 pixels are red
    table = color_weights(frames, power=0.5, max_weight=20.0)
    grey, red = color_index(np.array([90, 90, 90], np.uint8)), color_index(
        np.array([220, 30, 30], np.uint8))
    assert table[grey] == 1.0
    assert table[red] == pytest.approx(np.sqrt(252 / 4))
    assert table.max() == 20.0                            # unseen colours get the cap
    video = torch.from_numpy(frames[:1]).permute(0, 3, 1, 2)[:, :, None].float() / 127.5 - 1
    weights = pixel_weights(video, torch.from_numpy(table))
    assert weights.shape == (1, 1, 1, 16, 16)
    assert weights[0, 0, 0, 0, 0] == pytest.approx(table[red])
    assert weights[0, 0, 0, 8, 8] == 1.0


def test_train_vae_with_colour_balance_resumes_and_feeds_the_policy_trainer(tmp_path, dataset):
    config = load_vae_config(write_config(tmp_path, dataset, color_balance=0.5))
    first = VaeTrainer(config, progress=False)
    assert first.color_table is not None and first.color_table.max() > 1.0
    final = first.run_loop()
    val = (tmp_path / 'vae' / 'val.csv').read_text().splitlines()
    assert val[0].split(',') == ['step', 'psnr_db', 'mse', 'psnr_rare_db'] and len(val) == 3
    assert all(np.isfinite(float(x)) for x in val[-1].split(',')[1:])
    loaded = load_checkpoint(final)
    assert len(loaded.extra['color_weights']) == 512
    # Resuming at the last checkpoint with more steps continues from it.
    longer = load_vae_config(write_config(tmp_path, dataset, color_balance=0.5),
                             ['optim.steps=6'])
    resumed = VaeTrainer(longer, resume=True, progress=False)
    assert resumed.step == 4
    resumed.run_loop()
    assert load_checkpoint(final).extra['step'] == 6
    # The policy trainer's loader accepts it, latent statistics included.
    preset, vae = load_vae(str(final), preset_from_dict(TEST_PRESET), allow_random=False)
    assert len(preset.vae.latent_std) == preset.vae.z_dim
    assert all(s > 0 for s in preset.vae.latent_std)


def test_init_starts_from_a_vae_checkpoint_and_refuses_a_policy_one(tmp_path, dataset):
    base = VaeTrainer(load_vae_config(write_config(tmp_path, dataset, 'base')),
                      progress=False).run_loop()
    started = VaeTrainer(load_vae_config(write_config(tmp_path, dataset, 'next',
                                                      init=str(base))), progress=False)
    for name, value in load_checkpoint(base).states['vae'].items():
        assert torch.equal(started.vae.state_dict()[name], value), name
    policy_like = tmp_path / 'policy'
    from cosmos_policy_ros.training import checkpoints
    checkpoints.save_model(policy_like, {'dit': torch.nn.Linear(2, 2)},
                           preset_from_dict(TEST_PRESET), {}, {})
    with pytest.raises(ConfigError, match='init: .* has no vae module'):
        VaeTrainer(load_vae_config(write_config(tmp_path, dataset, 'bad',
                                                init=str(policy_like))), progress=False)


def test_cli_names_a_bad_field(tmp_path, dataset):
    path = write_config(tmp_path, dataset, posterior='median')
    result = subprocess.run([sys.executable, '-m', 'cosmos_policy_ros.cli', 'train-vae', path],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'posterior must be mean or sample' in result.stdout
