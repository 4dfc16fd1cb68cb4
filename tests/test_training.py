"""Training: sample-kind masks, value targets, batch encoding, loss decrease."""
import dataclasses

import numpy as np
import pytest
import torch

from cosmos_policy_ros.model import layout as L
from cosmos_policy_ros.model.config import get_preset
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.training import (
    TrainBatch,
    diffusion_training_loss,
    encode_batch,
    inject_state,
    make_optimizer,
    masks_for,
    train_step,
    value_targets,
)
from cosmos_policy_ros.model.vae import WanVAE
from cosmos_policy_ros.names import CAMERAS

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_masks_per_sample_kind():
    cond, loss = masks_for(L.ALOHA_LAYOUT, ['policy', 'world_model', 'value'])
    assert cond.dtype == torch.bool and cond.shape == (3, 11)
    assert cond[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    assert cond[1].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]
    assert cond[2].nonzero().flatten().tolist() == list(range(10))
    assert loss.eq(1).all()
    cond, loss = masks_for(L.ALOHA_LAYOUT, ['policy', 'value'], 'v_sprime')
    assert cond[1].nonzero().flatten().tolist() == [0, 6, 7, 8, 9]
    assert loss[0].eq(1).all() and loss[1].tolist() == [0] * 10 + [1]
    cond, loss = masks_for(L.ALOHA_LAYOUT, ['value'], 'q_sa')
    assert cond[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_action_weight_scales_the_generated_action_frame_only():
    action = L.ALOHA_LAYOUT.index(L.Role.ACTION)
    cond, loss = masks_for(L.ALOHA_LAYOUT, ['policy', 'world_model', 'value'],
                           action_weight=10.0)
    assert loss[0, action] == 10.0                  # policy: the chunk is generated
    assert loss[1, action] == 1.0 and loss[2, action] == 1.0   # conditioning there
    others = [t for t in range(11) if t != action]
    assert loss[:, others].eq(1).all()
    _, plain = masks_for(L.ALOHA_LAYOUT, ['policy'])
    assert plain.eq(1).all()


def test_value_targets():
    success = value_targets(5, reward=1.0, gamma=0.5)
    np.testing.assert_allclose(success, 2 * 0.5 ** np.array([4, 3, 2, 1, 0]) - 1)
    assert success[-1] == 1.0
    np.testing.assert_allclose(value_targets(4, reward=0.0), -1.0)
    np.testing.assert_allclose(value_targets(4, reward=0.5, gamma=0.9),
                               value_targets(4, reward=1.0, gamma=0.9))   # reference quirk
    with pytest.raises(ValueError, match='gamma'):
        value_targets(3, gamma=1.5)


def make_batch(size=64, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = {cam: torch.rand(batch, 3, size, size, generator=gen) * 2 - 1 for cam in CAMERAS}
    actions = torch.rand(batch, 50, 14, generator=gen) * 2 - 1
    return TrainBatch(images=images, proprio=actions[:, 0], actions=actions,
                      future_proprio=actions[:, -1],
                      future_images={c: -v for c, v in images.items()},
                      value=torch.tensor([-1.0, 0.5])[:batch],
                      text_emb=torch.randn(batch, 4, 384, generator=gen),
                      kinds=['policy', 'value'][:batch])


def test_train_batch_validation():
    batch = make_batch()
    with pytest.raises(ValueError, match=r'TrainBatch.actions.*normalised'):
        dataclasses.replace(batch, actions=batch.actions * 10)
    with pytest.raises(ValueError, match='TrainBatch.kinds'):
        dataclasses.replace(batch, kinds=['policy'])


def test_encode_batch_injects_state_after_vae():
    preset = get_preset('tiny')
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = WanVAE(preset.vae).eval()
    batch = make_batch()
    x0 = encode_batch(vae, L.ALOHA_LAYOUT, batch)
    assert x0.shape == (2, 16, 11, 8, 8)
    torch.testing.assert_close(L.read_back(x0, 5, 700).reshape(2, 50, 14), batch.actions)
    torch.testing.assert_close(L.read_back(x0, 1, 14), batch.proprio)
    torch.testing.assert_close(L.read_back(x0, 6, 14), batch.future_proprio)
    torch.testing.assert_close(L.read_value(x0, 10), (batch.value + 1) / 2)
    # image frames come from the VAE: the current and future cameras differ
    assert (x0[:, :, 4] - x0[:, :, 9]).abs().mean() > 1e-3


def test_training_loss_decreases():
    torch.manual_seed(0)
    preset = dataclasses.replace(get_preset('tiny'), image_size=64)
    net = DiT(preset.dit)
    batch = make_batch()
    gen = torch.Generator().manual_seed(1)
    x0 = inject_state(L.ALOHA_LAYOUT, torch.randn(2, 16, 11, 8, 8, generator=gen) * 0.5,
                      batch.proprio, batch.actions, batch.future_proprio, batch.value)
    cond, loss_mask = masks_for(L.ALOHA_LAYOUT, batch.kinds)

    def held_out_loss():
        with torch.no_grad():
            net.eval()
            return diffusion_training_loss(net, x0, batch.text_emb, cond, loss_mask,
                                           generator=torch.Generator().manual_seed(123))[0].item()

    before = held_out_loss()
    optimizer = make_optimizer(net, lr=3e-3, weight_decay=0.0)
    losses = [train_step(net, optimizer, x0, batch.text_emb, batch.kinds, generator=gen).loss
              for _ in range(40)]
    after = held_out_loss()
    assert np.isfinite(losses).all()
    assert after < 0.6 * before, (before, after)
