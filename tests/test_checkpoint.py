"""Checkpoints: released-format files load strictly; our safetensors format round-trips."""
import pytest
import torch

from cosmos_policy_ros.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_released_dit,
    load_wan_vae,
    save_checkpoint,
)
from cosmos_policy_ros.model.config import ConfigError, get_preset, preset_from_dict
from cosmos_policy_ros.model.dit import DiT
from cosmos_policy_ros.model.vae import WanVAE

TINY = get_preset('tiny')


def _random_release_state(seed: int) -> dict[str, torch.Tensor]:
    """A DiT state dict as the release stores it: bf16 weights, int/float counters."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in DiT(TINY.dit).state_dict().items():
        if value.is_floating_point() and not key.startswith(('pos_embedder.', 'accum_')):
            value = torch.randn(value.shape, generator=g).to(torch.bfloat16)
        state[key] = value
    state['accum_iteration'] = torch.tensor(50_000)
    state['accum_train_in_hours'] = torch.tensor(48.5)
    return state


def _release_file(path, *prefixed_states, extra_state=True):
    """torch.save a dict with 'net.'/'net_ema.' keys and TransformerEngine extra-state keys."""
    data = {}
    for prefix, state in prefixed_states:
        data.update({prefix + k: v for k, v in state.items()})
        if extra_state:
            for key in ('t_embedding_norm', 'blocks.0.self_attn.q_norm',
                        'blocks.1.cross_attn.k_norm'):
                data[f'{prefix}{key}._extra_state'] = torch.empty(0, dtype=torch.uint8)
    torch.save(data, path)
    return path


def _assert_state_equal(module_or_state, expected):
    state = module_or_state.state_dict() if hasattr(module_or_state, 'state_dict') \
        else module_or_state
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert state[key].dtype == value.dtype, key
        assert torch.equal(state[key], value), key



pytestmark = pytest.mark.usefixtures('one_torch_thread')

def test_release_format_loads_strictly_and_round_trips_bit_exactly(tmp_path):
    weights = _random_release_state(seed=1)
    path = _release_file(tmp_path / 'release.pt', ('net.', weights))
    net = load_released_dit(path, TINY.dit)
    _assert_state_equal(net, weights)

    extra = {'step': 1234, 'dataset': 'sim_transfer_cube', 'stats': {'min': [0.0, -1.5]}}
    save_checkpoint(tmp_path / 'ckpt', {'dit': net, 'ema': weights}, TINY, extra)
    states, preset, extra_back = load_checkpoint(tmp_path / 'ckpt')
    assert preset == TINY and extra_back == extra
    _assert_state_equal(states['dit'], weights)
    _assert_state_equal(states['ema'], weights)
    rebuilt = load_checkpoint(tmp_path / 'ckpt').dit
    x = torch.randn(1, 16, 2, 4, 4)
    args = (x, torch.rand(1, 2), torch.randn(1, 3, TINY.text_dim), torch.zeros(1, 1, 2, 4, 4))
    with torch.no_grad():
        assert torch.equal(rebuilt(*args), net(*args))


def test_ema_weights_are_selected_on_request(tmp_path):
    regular, ema = _random_release_state(seed=1), _random_release_state(seed=2)
    both = _release_file(tmp_path / 'both.pt', ('net.', regular), ('net_ema.', ema))
    _assert_state_equal(load_released_dit(both, TINY.dit), regular)
    _assert_state_equal(load_released_dit(both, TINY.dit, prefer_ema=True), ema)
    only_ema = _release_file(tmp_path / 'ema.pt', ('net_ema.', ema))
    _assert_state_equal(load_released_dit(only_ema, TINY.dit), ema)


def test_the_policy_loads_the_regular_weights_of_a_release_as_the_reference(tmp_path):
    """cosmos_utils.get_model loads with load_ema_to_reg=False: 'net.', not 'net_ema.'."""
    from cosmos_policy_ros.model.policy import CosmosPolicy
    from cosmos_policy_ros.model.text import TextEmbeddings
    regular, ema = _random_release_state(seed=1), _random_release_state(seed=2)
    both = _release_file(tmp_path / 'policy.pt', ('net.', regular), ('net_ema.', ema))
    torch.save(WanVAE(TINY.vae).state_dict(), tmp_path / 'tokenizer.pth')
    text = TextEmbeddings(TINY.text_tokens, TINY.text_dim, {'task': torch.zeros(1, 2, 384)})
    policy = CosmosPolicy.from_config(TINY, checkpoint=both, text=text)
    state = policy.dit.state_dict()
    for key, value in regular.items():
        if value.is_floating_point() and not key.startswith(('pos_embedder.', 'accum_')):
            assert torch.equal(state[key], value.float()), key


def test_missing_counters_and_rope_buffers_are_regenerated(tmp_path):
    weights = _random_release_state(seed=3)
    trimmed = {k: v for k, v in weights.items() if not k.startswith(('accum_', 'pos_embedder.'))}
    net = load_released_dit(_release_file(tmp_path / 'trim.pt', ('net.', trimmed)), TINY.dit)
    reference = DiT(TINY.dit).state_dict()
    assert torch.equal(net.pos_embedder.dim_spatial_range,
                       reference['pos_embedder.dim_spatial_range'])
    assert net.accum_iteration.item() == 0


@pytest.mark.parametrize('edit, names', [
    (lambda s: s.pop('net.blocks.1.mlp.layer2.weight'), ['missing', 'blocks.1.mlp.layer2.weight']),
    (lambda s: s.__setitem__('net.blocks.0.gate.weight', torch.zeros(3)),
     ['unexpected', 'blocks.0.gate.weight']),
    (lambda s: s.__setitem__('net.final_layer.linear.weight', torch.zeros(64, 32)),
     ['shape mismatch', 'final_layer.linear.weight', '(64, 32)', '(64, 64)']),
])
def test_key_errors_name_the_key_and_shapes(tmp_path, edit, names):
    data = {'net.' + k: v for k, v in _random_release_state(seed=4).items()}
    edit(data)
    torch.save(data, tmp_path / 'bad.pt')
    with pytest.raises(CheckpointError) as info:
        load_released_dit(tmp_path / 'bad.pt', TINY.dit)
    for name in names:
        assert name in str(info.value)
    assert 'config/preset' in str(info.value)


def test_corrupt_truncated_and_unsafe_files_are_refused(tmp_path):
    good = _release_file(tmp_path / 'good.pt', ('net.', _random_release_state(seed=5)))
    blob = good.read_bytes()
    (tmp_path / 'truncated.pt').write_bytes(blob[:len(blob) // 2])
    (tmp_path / 'garbage.pt').write_bytes(b'not a checkpoint at all' * 10)
    for name in ('truncated.pt', 'garbage.pt'):
        with pytest.raises(CheckpointError, match='corrupt or truncated'):
            load_released_dit(tmp_path / name, TINY.dit)
    with pytest.raises(CheckpointError, match='does not exist'):
        load_released_dit(tmp_path / 'absent.pt', TINY.dit)
    # A pickle that would build an arbitrary object is never executed.
    torch.save({'net.x': ConfigError('payload')}, tmp_path / 'unsafe.pt')
    with pytest.raises(CheckpointError, match='refusing to unpickle'):
        load_released_dit(tmp_path / 'unsafe.pt', TINY.dit)


def test_dit_and_vae_modules_are_rebuilt_from_our_format(tmp_path):
    torch.manual_seed(0)
    dit, vae = DiT(TINY.dit), WanVAE(TINY.vae)
    save_checkpoint(tmp_path / 'ckpt', {'dit': dit, 'vae': vae}, TINY)
    loaded = load_checkpoint(tmp_path / 'ckpt')
    _assert_state_equal(loaded.dit, dit.state_dict())
    _assert_state_equal(loaded.vae, vae.state_dict())
    with pytest.raises(CheckpointError, match="no module 'ema'"):
        loaded.build('ema', DiT(TINY.dit))


def test_our_format_detects_damage(tmp_path):
    save_checkpoint(tmp_path / 'ckpt', {'dit': _random_release_state(seed=6)}, TINY)
    weights = tmp_path / 'ckpt' / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match='corrupt or truncated'):
        load_checkpoint(tmp_path / 'ckpt')
    with pytest.raises(CheckpointError, match='missing model.safetensors'):
        load_checkpoint(tmp_path / 'nothing-here')
    (tmp_path / 'ckpt' / 'config.yaml').unlink()
    with pytest.raises(CheckpointError, match='missing config.yaml'):
        load_checkpoint(tmp_path / 'ckpt')
    with pytest.raises(CheckpointError, match='YAML-able'):
        save_checkpoint(tmp_path / 'other', {'dit': {}}, TINY, {'obj': object()})


def test_wan_vae_tokenizer_file_loads(tmp_path):
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) for k, v in WanVAE(TINY.vae).state_dict().items()}
    torch.save(state, tmp_path / 'tokenizer.pth')
    _assert_state_equal(load_wan_vae(tmp_path / 'tokenizer.pth', TINY.vae), state)
    del state['decoder.head.2.bias']
    torch.save(state, tmp_path / 'broken.pth')
    with pytest.raises(CheckpointError, match='decoder.head.2.bias'):
        load_wan_vae(tmp_path / 'broken.pth', TINY.vae)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'small'.*known presets"):
        get_preset('smal')
    with pytest.raises(ConfigError, match="did you mean 'num_blocks'"):
        preset_from_dict({'name': 'x', 'dit': {'model_channels': 64, 'num_block': 2,
                                               'num_heads': 2}})


@pytest.mark.parametrize('data, match', [
    ({'name': 'x', 'dit': {'model_channels': 64, 'num_blocks': 2, 'num_heads': 3}},
     'model_channels \\(64\\) must be divisible by num_heads'),
    ({'name': 'x', 'text_dim': 512, 'dit': {'model_channels': 64, 'num_blocks': 1,
                                            'num_heads': 2}},
     'text_dim \\(512\\) must equal dit.crossattn_emb_channels'),
    ({'name': 'x', 'dit': {'model_channels': 64, 'num_blocks': 1, 'num_heads': 2},
      'vae': {'temperal_downsample': [True]}}, 'temperal_downsample needs'),
    ({'name': 'x', 'dit': {'model_channels': 64, 'num_blocks': 1, 'num_heads': 2},
      'vae': {'temporal_window': 6}}, 'temporal_window \\(6\\) must be a multiple'),
    ({'name': 'x', 'image_size': 100, 'dit': {'model_channels': 64, 'num_blocks': 1,
                                              'num_heads': 2}}, 'image_size \\(100\\)'),
    ({'name': 'x'}, 'missing required section "dit"'),
])
def test_inconsistent_presets_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        preset_from_dict(data)


def test_malformed_preset_yaml_names_the_file(tmp_path):
    path = tmp_path / 'broken.yaml'
    path.write_text('dit: {model_channels: 64,\n')
    with pytest.raises(ConfigError, match='broken.yaml: not valid YAML'):
        get_preset(path)
    path.write_text('dit: {model_channels: 64, num_blocks: 1, num_heads: 2}\nvae: {dim: 3}\n')
    with pytest.raises(ConfigError, match='broken.yaml: vae: VAEConfig.dim must be even'):
        get_preset(str(path))
