"""Wan2.1 VAE: release layout (meta device), output parity with the original code, causality."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cosmos_policy_ros.model.config import VAEConfig, get_preset
from cosmos_policy_ros.model.vae import CausalConv3d, WanVAE, latent_frames, pixel_frames

REFERENCE = '/work/shared/reference'



pytestmark = pytest.mark.usefixtures('one_torch_thread')

def test_release_state_dict_matches_manifest():
    with torch.device('meta'):
        vae = WanVAE(get_preset('2b').vae)
    manifest = json.loads(Path(f'{REFERENCE}/manifest_wan21_vae.json').read_text())
    expected = {name: tuple(shape) for name, shape, kind in manifest['params']}
    ours = {name: tuple(t.shape) for name, t in vae.state_dict().items()}
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]} == {}
    assert len(list(vae.buffers())) == 0
    assert sum(p.numel() for p in vae.parameters()) == manifest['totals']['param_elements']


@pytest.fixture(scope='module')
def fixture():
    data = load_file(f'{REFERENCE}/fixtures/wan_vae_small.safetensors')
    weights = {k[len('weight.'):]: v for k, v in data.items() if k.startswith('weight.')}
    return data, weights


def _fixture_vae(weights, **overrides) -> WanVAE:
    vae = WanVAE(VAEConfig(dim=8, **overrides)).eval()
    vae.load_state_dict(weights, strict=True)
    return vae


def test_encode_decode_match_original_code(fixture):
    data, weights = fixture
    vae = _fixture_vae(weights)
    assert torch.equal(torch.tensor(vae.cfg.latent_mean), data['const.latent_mean'])
    assert torch.equal(torch.tensor(vae.cfg.latent_std), data['const.latent_std'])
    video = data['input.video_B_C_T_H_W']
    with torch.no_grad():
        mu = vae.encode_mu(video)
        latent = vae.normalize(mu)  # encode() == normalize(encode_mu()); prefixes use encode()
        prefix5 = vae.encode(video[:, :, :5])
        prefix1 = vae.encode(video[:, :, :1])
        decoded = vae.decode(data['output.latent_normalized'])
    for ours, key in ((mu, 'mu_raw'), (latent, 'latent_normalized'),
                      (prefix5, 'latent_normalized_prefix5'),
                      (prefix1, 'latent_normalized_prefix1'),
                      (decoded, 'decoded_from_latent_normalized')):
        reference = data[f'output.{key}']
        assert ours.shape == reference.shape, key
        assert (ours - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max()), key
    # Causal: a prefix of the clip encodes exactly like the prefix of the full encode.
    assert torch.equal(prefix5, latent[:, :, :2])
    assert torch.equal(prefix1, latent[:, :, :1])


def test_temporal_window_16_equals_4(fixture):
    data, weights = fixture
    video = data['input.video_B_C_T_H_W']
    with torch.no_grad():
        by4 = _fixture_vae(weights).encode(video)
        by16 = _fixture_vae(weights, temporal_window=16).encode(video)
    assert torch.allclose(by4, by16, atol=1e-5)


def test_batch_rows_are_independent(fixture):
    data, weights = fixture
    vae = _fixture_vae(weights)
    video = torch.cat([data['input.video_B_C_T_H_W'], -data['input.video_B_C_T_H_W']])
    with torch.no_grad():
        both = vae.encode(video)
        second = vae.encode(video[1:])
        decoded = vae.decode(both)
    assert torch.allclose(both[1:], second, atol=1e-6)
    assert not torch.allclose(both[0], both[1], atol=1e-3)
    assert decoded.shape == video.shape and torch.isfinite(decoded).all()


@pytest.mark.parametrize('channels, stride', [(8, 1), (64, 1), (8, (2, 1, 1))])
def test_causal_conv_equals_conv3d_on_zero_padded_past(channels, stride):
    torch.manual_seed(0)
    kernel = (3, 1, 1) if stride != 1 else 3
    padding = (0, 0, 0) if stride != 1 else (1, 1, 1)
    conv = CausalConv3d(channels, 5, kernel, stride=stride, padding=padding)
    x = torch.randn(2, channels, 7, 6, 5)
    past = 2 * padding[0]
    expected = F.conv3d(F.pad(x, (padding[2],) * 2 + (padding[1],) * 2 + (past, 0)),
                        conv.weight, conv.bias, stride=stride)
    with torch.no_grad():
        assert torch.allclose(conv(x), expected, atol=1e-5)
        if stride == 1:  # chunked with a cache == all at once
            cache = {}
            chunked = torch.cat([conv(x[:, :, :1], cache), conv(x[:, :, 1:5], cache),
                                 conv(x[:, :, 5:], cache)], dim=2)
            assert torch.allclose(chunked, expected, atol=1e-5)


def test_frame_counts():
    assert [latent_frames(t) for t in (1, 5, 9, 41)] == [1, 2, 3, 11]
    assert [pixel_frames(t) for t in (1, 2, 3, 11)] == [1, 5, 9, 41]
    with pytest.raises(ValueError, match='1 \\+ 4k'):
        latent_frames(42)
    with pytest.raises(ValueError, match='num_latent_frames'):
        pixel_frames(0)


@pytest.mark.parametrize('shape, match', [
    ((1, 3, 6, 16, 16), 'T must be 1 \\+ 4k'),
    ((1, 3, 5, 12, 16), 'multiples of 8'),
    ((1, 4, 5, 16, 16), '\\(B, 3, T, H, W\\)'),
])
def test_bad_video_is_rejected_with_the_fix(shape, match):
    vae = WanVAE(VAEConfig(dim=4))
    with pytest.raises(ValueError, match=match):
        vae.encode(torch.zeros(shape))


def test_bad_latent_is_rejected():
    vae = WanVAE(VAEConfig(dim=4))
    with pytest.raises(ValueError, match='latent must be \\(B, 16'):
        vae.decode(torch.zeros(1, 8, 2, 2, 2))
