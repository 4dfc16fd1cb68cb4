"""DiT: release layout (2B on the meta device) and output parity with the original code."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cosmos_policy_ros.model.config import DiTConfig, get_preset
from cosmos_policy_ros.model.dit import DiT, rope_angles

REFERENCE = '/work/shared/reference'
FIXTURE_CFG = DiTConfig(model_channels=192, num_blocks=2, num_heads=3,
                        crossattn_emb_channels=96, adaln_lora_dim=48)


def _released_layout(net: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    params = {name for name, _ in net.named_parameters()}
    return {name: (tuple(t.shape), 'param' if name in params else 'buffer')
            for name, t in net.state_dict().items()}



pytestmark = pytest.mark.usefixtures('one_torch_thread')

def test_2b_state_dict_matches_release_manifest():
    with torch.device('meta'):
        net = DiT(get_preset('2b').dit)
    manifest = json.loads(Path(f'{REFERENCE}/manifest_dit_2b.json').read_text())
    expected = {name: (tuple(shape), kind) for name, shape, kind in manifest['params']}
    ours = _released_layout(net)
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    mismatched = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert mismatched == {}
    n_params = sum(p.numel() for p in net.parameters())
    print(f'2B DiT parameters: {n_params:,}')
    assert n_params == manifest['totals']['param_elements'] == 1_956_413_440


@pytest.mark.parametrize('fixture', ['dit_small', 'dit_small_std0p1'])
def test_forward_matches_original_code(fixture):
    data = load_file(f'{REFERENCE}/fixtures/{fixture}.safetensors')
    net = DiT(FIXTURE_CFG).eval()
    net.load_state_dict({k[len('weight.'):]: v for k, v in data.items()
                         if k.startswith('weight.')}, strict=True)
    residuals = []
    for block in net.blocks:
        block.register_forward_hook(
            lambda module, args, out: residuals.append(out.reshape(out.shape[0], -1,
                                                                   out.shape[-1])))
    with torch.no_grad():
        out = net(data['input.x_B_C_T_H_W'], data['input.timesteps_B_T'],
                  data['input.crossattn_emb'], data['input.condition_video_input_mask_B_C_T_H_W'],
                  data['input.padding_mask'])
    assert out.shape == data['output.x_B_C_T_H_W'].shape
    assert (out - data['output.x_B_C_T_H_W']).abs().max() <= 1e-4
    for i, residual in enumerate(residuals):
        reference = data[f'output.debug_block{i}_B_THW_D']
        # Residual streams reach |x| ~ 30 with std-0.1 weights: compare relative to scale.
        assert (residual - reference).abs().max() <= 1e-4 * max(1.0, reference.abs().max())
    T, H, W = out.shape[2], out.shape[3] // 2, out.shape[4] // 2
    table = data['output.debug_rope_emb_L_1_1_D'][:, 0, 0]
    assert torch.equal(rope_angles(FIXTURE_CFG, T, H, W), table)


def _tiny_inputs(cfg: DiTConfig, B=2, T=3, H=4, W=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, cfg.in_channels, T, H, W, generator=g)
    t = torch.rand(B, T, generator=g)
    context = torch.randn(B, 5, cfg.crossattn_emb_channels, generator=g)
    mask = (torch.arange(T) < 1).float().view(1, 1, T, 1, 1).expand(B, 1, T, H, W)
    return x, t, context, mask


def _tiny_net(seed=0) -> DiT:
    torch.manual_seed(seed)
    net = DiT(DiTConfig(model_channels=32, num_blocks=2, num_heads=2,
                        crossattn_emb_channels=24, adaln_lora_dim=8))
    with torch.no_grad():  # zero-initialised gates would hide the blocks: randomise everything
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


def test_batch_rows_are_independent_and_scalar_timesteps_broadcast():
    net = _tiny_net()
    x, t, context, mask = _tiny_inputs(net.cfg)
    with torch.no_grad():
        full = net(x, t, context, mask)
        row = net(x[1:], t[1:], context[1:], mask[1:])
        per_frame = net(x, t[:, :1].expand_as(t), context, mask)
        scalar = net(x, t[:, 0], context, mask)
    assert full.shape == x.shape and torch.isfinite(full).all()
    assert torch.allclose(full[1:], row, atol=1e-5)
    assert torch.allclose(per_frame, scalar, atol=1e-5)
    assert not torch.allclose(full, per_frame, atol=1e-3)  # timesteps do act per frame


def test_activation_checkpointing_gives_identical_gradients():
    x, t, context, mask = _tiny_inputs(_tiny_net().cfg)
    grads = []
    for flag in (False, True):
        net = _tiny_net()
        net.activation_checkpointing = flag
        net(x, t, context, mask).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bfloat16_weights_run_and_track_fp32():
    net = _tiny_net()
    x, t, context, mask = _tiny_inputs(net.cfg)
    with torch.no_grad():
        reference = net(x, t, context, mask)
        out = net.to(torch.bfloat16)(x, t, context, mask)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - reference).abs().max() <= 0.05 * reference.abs().max()


@pytest.mark.parametrize('bad, field', [
    ({'x': torch.zeros(2, 15, 3, 4, 6)}, 'x_B_C_T_H_W'),
    ({'x': torch.zeros(2, 16, 3, 5, 6)}, 'multiples of the patch'),
    ({'t': torch.zeros(2, 4)}, 'timesteps_B_T'),
    ({'context': torch.zeros(2, 5, 23)}, 'crossattn_emb_B_N_D'),
    ({'mask': torch.zeros(2, 1, 2, 4, 6)}, 'condition_mask_B_1_T_H_W'),
])
def test_bad_inputs_name_the_argument(bad, field):
    net = _tiny_net()
    x, t, context, mask = _tiny_inputs(net.cfg)
    args = {'x': x, 't': t, 'context': context, 'mask': mask, **bad}
    with pytest.raises(ValueError, match=field):
        net(args['x'], args['t'], args['context'], args['mask'])


def test_rope_tables_cached_in_inference_mode_serve_training_later():
    net = _tiny_net()
    x, t, context, mask = _tiny_inputs(net.cfg, T=5, H=2, W=4)
    with torch.inference_mode():
        net(x, t, context, mask)
    net(x, t, context, mask).sum().backward()  # would raise on an inference-mode table
    assert net.blocks[0].self_attn.q_proj.weight.grad is not None


def test_2b_rope_layout_and_frequencies():
    cfg = get_preset('2b').dit
    T, H, W = 11, 14, 14  # the policy's 224 px clip: 11 latent frames of 14x14 patches
    table = rope_angles(cfg, T, H, W).double().reshape(T, H, W, 128)
    assert torch.equal(table[..., :64], table[..., 64:])  # rotate-half pairs share angles
    t, h, w = 7, 5, 9
    theta_hw = 10000 * 3.0 ** (42 / 40)
    expected = torch.cat([t / 10000 ** (torch.arange(0, 44, 2).double() / 44),
                          h / theta_hw ** (torch.arange(0, 42, 2).double() / 42),
                          w / theta_hw ** (torch.arange(0, 42, 2).double() / 42)])
    assert torch.allclose(table[t, h, w, :64], expected, rtol=1e-5, atol=1e-6)


def test_bf16_runs_embed_the_timestep_in_bf16_as_the_reference():
    """The reference casts c_noise to the model precision before Timesteps (video2world
    denoise), so a bf16 net cannot tell t from t rounded to bf16; a float32 net can."""
    torch.manual_seed(0)
    net = DiT(get_preset('tiny').dit).eval()
    t = torch.tensor([[0.123456, 0.987654]])
    rounded = t.bfloat16().float()
    with torch.no_grad():
        exact32, rounded32 = net.embed_timesteps(t)[0], net.embed_timesteps(rounded)[0]
        assert exact32.dtype == torch.float32 and (exact32 - rounded32).abs().max() > 1e-4
        net.to(torch.bfloat16)
        (emb, lora), (emb_r, lora_r) = net.embed_timesteps(t), net.embed_timesteps(rounded)
    assert emb.dtype == lora.dtype == torch.bfloat16
    assert torch.equal(emb, emb_r) and torch.equal(lora, lora_r)
