"""Sampler parity with the reference fixture, sigma schedules, preconditioning and loss."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_policy_ros.model.diffusion import (
    Conditioning,
    TrainingNoise,
    add_noise,
    denoise,
    diffusion_loss,
    rectified_flow_scaling,
)
from cosmos_policy_ros.model.sampler import (
    SamplerConfig,
    call_sigmas,
    initial_noise,
    karras_sigmas,
    sample,
)

FIXTURE = Path('/work/shared/reference/fixtures/sampler.json')


def toy_x0(calls):
    def x0_fn(x, sigma_B):
        assert x.dtype == torch.float32 and sigma_B.dtype == torch.float32
        calls.append(float(sigma_B[0]))
        return 0.3 * torch.sin(x / (1 + sigma_B.view(-1, *[1] * (x.dim() - 1)))) + 0.1
    return x0_fn


@pytest.fixture(scope='module')
def fixture():
    if not FIXTURE.is_file():
        pytest.skip(f'reference fixture {FIXTURE} not present')
    return json.loads(FIXTURE.read_text())


def test_initial_noise_matches_reference(fixture):
    noise = initial_noise((3, 2, 2, 2), seeds=[5])
    expected = np.array(fixture['initial_noise']['x_sigma_max_flat'], dtype=np.float32)
    np.testing.assert_array_equal(noise.flatten().numpy(), expected)


@pytest.mark.parametrize('num_steps', [1, 4, 6, 8, 10])
def test_sampler_reproduces_reference(fixture, num_steps):
    result = fixture['results_by_num_steps'][str(num_steps)]
    calls = []
    out = sample(toy_x0(calls), initial_noise((3, 2, 2, 2), seeds=[5]), num_steps)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(calls, result['denoiser_call_sigmas'], rtol=1e-6)
    np.testing.assert_allclose(out.flatten().numpy(), result['final_sample_flat'],
                               rtol=0, atol=2e-7)


def test_two_steps_makes_one_call_as_the_reference_unless_asked_for_two(fixture):
    one = fixture['results_by_num_steps']['1']['final_sample_flat']
    calls = []
    as_reference = sample(toy_x0(calls), initial_noise((3, 2, 2, 2), seeds=[5]), 2)
    assert calls == [80.0] and call_sigmas(2) == [80.0]
    np.testing.assert_allclose(as_reference.flatten().numpy(), one, atol=2e-7)
    calls = []
    exact = sample(toy_x0(calls), initial_noise((3, 2, 2, 2), seeds=[5]), 2,
                   SamplerConfig(reference_two_step_quirk=False))
    assert calls == pytest.approx([80.0, 4.0])
    assert np.abs(exact.flatten().numpy() - np.array(one)).max() > 1e-3


def test_sigma_schedules():
    assert call_sigmas(10) == pytest.approx(
        [80, 60.70, 45.53, 33.73, 24.66, 17.77, 12.60, 8.77, 5.99, 4.0], abs=6e-3)
    assert call_sigmas(5) == pytest.approx([80, 42.29, 20.97, 9.62, 4.0], abs=6e-3)
    assert call_sigmas(1) == [80.0]
    assert karras_sigmas(3)[0] == 80.0 and karras_sigmas(3)[-1] == pytest.approx(4.0)
    with pytest.raises(ValueError, match='num_steps'):
        call_sigmas(0)


def test_per_sample_seeds_are_batch_independent():
    batch = initial_noise((2, 3), seeds=[7, 8, 7])
    assert torch.equal(batch[0], batch[2]) and not torch.equal(batch[0], batch[1])
    assert torch.equal(batch[1], initial_noise((2, 3), seeds=[8])[0])


def test_rectified_flow_scaling_identities():
    sigma = torch.tensor([0.0, 1.0, 4.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = rectified_flow_scaling(sigma)
    t = sigma / (1 + sigma)
    torch.testing.assert_close(c_noise, t)
    torch.testing.assert_close(c_skip, 1 - t)
    torch.testing.assert_close(c_out, -t)
    torch.testing.assert_close(c_in, 1 - t)
    # A net that predicts the true velocity eps - x0 recovers x0 exactly at every sigma.
    x0 = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(4, 3, dtype=torch.float64)
    x_sigma = x0 + sigma[:, None] * eps
    # rectified-flow state x_t = (1-t) x0 + t eps = c_in * x_sigma
    x_t = c_in[:, None] * x_sigma
    torch.testing.assert_close(x_t, (1 - t[:, None]) * x0 + t[:, None] * eps)
    x0_pred = c_skip[:, None] * x_sigma + c_out[:, None] * (eps - x0)
    torch.testing.assert_close(x0_pred, x0)


def test_denoise_feeds_conditioning_clean_and_overwrites_it():
    seen = {}

    def net(x, timesteps_B_T, context, mask):
        seen.update(x=x.clone(), t=timesteps_B_T.clone(), mask=mask.clone())
        return torch.ones_like(x)

    gt = torch.randn(2, 4, 3, 2, 2)
    mask = torch.tensor([[True, False, False], [True, True, False]])
    cond = Conditioning(gt, mask, torch.zeros(2, 5, 8))
    x_sigma = torch.randn(2, 4, 3, 2, 2) * 10
    sigma = torch.tensor([9.0, 3.0])
    x0 = denoise(net, x_sigma, sigma, cond)
    assert torch.equal(x0[0, :, 0], gt[0, :, 0]) and torch.equal(x0[1, :, :2], gt[1, :, :2])
    assert torch.equal(seen['x'][1, :, 1], gt[1, :, 1])           # clean input, c_in(0) = 1
    torch.testing.assert_close(seen['t'], torch.tensor([[0, .9, .9], [0, 0, .75]]))
    assert seen['mask'].shape == (2, 1, 3, 2, 2) and seen['mask'][1, 0, 1].eq(1).all()
    t = 0.9
    torch.testing.assert_close(x0[0, :, 1], (1 - t) * x_sigma[0, :, 1] - t)
    with pytest.raises(ValueError, match='mask_B_T'):
        Conditioning(gt, mask[:, :2], torch.zeros(2, 5, 8))


def test_loss_formula_and_mask():
    x0 = torch.zeros(2, 1, 3, 1, 1)
    pred = torch.ones(2, 1, 3, 1, 1)
    sigma = torch.tensor([1.0, 3.0])
    expected = np.mean([4.0, (4 / 3) ** 2]) * 10
    assert diffusion_loss(x0, pred, sigma).item() == pytest.approx(expected)
    mask = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert diffusion_loss(x0, pred, sigma, mask).item() == pytest.approx(4.0 * 10 / 6)
    noisy = add_noise(x0, sigma, torch.ones_like(x0))
    assert noisy[1].eq(3).all()


def test_training_sigma_distribution():
    gen = torch.Generator().manual_seed(0)
    plain = TrainingNoise(scale_by_sqrt_frames=False).sample(40000, 11, gen)
    uniform_share = ((plain > 1) & (plain < 85)).float().mean().item()
    assert 0.3 < uniform_share <= 1.0
    # median of the mixture sits between the lognormal median (4) and the uniform one (43).
    assert 4.0 < plain.median().item() < 12.0
    gen = torch.Generator().manual_seed(0)
    scaled = TrainingNoise().sample(40000, 11, gen)
    torch.testing.assert_close(scaled, plain * math.sqrt(11))
    with pytest.raises(ValueError, match='uniform_prob'):
        TrainingNoise(uniform_prob=1.5)
