"""Runtimes: ONNX export parity (PyTorch vs ONNX Runtime CPU), the engine cache's keying and
stale rebuilds on the onnxruntime path, a policy running end to end on onnxruntime, and
TensorRT where it exists (skipped here with the reason)."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from cosmos_policy_ros.model.config import get_preset
from cosmos_policy_ros.model.policy import CosmosPolicy, Observation
from cosmos_policy_ros.model.text import TextEmbeddings
from cosmos_policy_ros.names import CAMERAS

pytest.importorskip('onnxruntime', reason='onnxruntime is installed by the [onnx] extra')
pytestmark = pytest.mark.usefixtures('one_torch_thread')

TASK = 'transfer cube'
IDENTITY = ('cpu test-model', '', 'ort-test')


def tiny_policy():
    """The tiny preset at 64 px (latent 8x8)."""
    preset = dataclasses.replace(get_preset('tiny'), image_size=64)
    gen = torch.Generator().manual_seed(0)
    text = TextEmbeddings(preset.text_tokens, preset.text_dim,
                          {TASK: torch.randn(1, 6, preset.text_dim, generator=gen)})
    return CosmosPolicy.from_config(preset, text=text, init_seed=0)


def observation(seed=0):
    rng = np.random.default_rng(seed)
    return Observation({c: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
                        for c in CAMERAS}, rng.normal(size=14) * 0.3, TASK)


def assert_close(ours: torch.Tensor, reference: torch.Tensor, max_abs: float, what: str):
    a, b = ours.double().flatten(), reference.double().flatten()
    diff = float((a - b).abs().max())
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    print(f'{what}: max|diff| {diff:.2e}, cosine {cosine:.8f}')
    assert diff <= max_abs and cosine >= 0.99999, (what, diff, cosine)


@pytest.fixture(scope='module')
def policy():
    return tiny_policy()


SHORT_CLIP = {'vae_encoder': {'video': [1, 3, 5, 64, 64]},
              'vae_decoder': {'latent': [1, 16, 2, 8, 8]}}


def test_onnx_graphs_match_pytorch_in_onnxruntime_at_any_batch(policy, tmp_path):
    """Each part at batch 3 (exported at 1: the batch axis is dynamic); the VAE graphs on a
    2-latent-frame clip (the same code unrolled fewer times: quick to export)."""
    import onnx
    import onnxruntime

    from cosmos_policy_ros.model.diffusion import Conditioning, denoise
    from cosmos_policy_ros.runtime.onnx_export import export_onnx
    specs = export_onnx(policy, tmp_path, shapes=SHORT_CLIP)
    sessions = {}
    for name, spec in specs.items():
        onnx.checker.check_model(str(tmp_path / spec.file))
        sessions[name] = onnxruntime.InferenceSession(str(tmp_path / spec.file),
                                                      providers=['CPUExecutionProvider'])

    def run(name, *tensors):
        feeds = {key: t.numpy() for key, t in zip(specs[name].inputs, tensors)}
        return torch.from_numpy(sessions[name].run(None, feeds)[0])

    gen = torch.Generator().manual_seed(1)
    latent = torch.randn(3, 16, policy.layout.num_frames, 8, 8, generator=gen)
    mask = torch.zeros(3, policy.layout.num_frames)
    mask[:, :5] = 1.0
    text = torch.randn(3, 16, 384, generator=gen)
    x_sigma = torch.randn(latent.shape, generator=gen) * 20
    sigma = torch.tensor([20.0, 5.0, 80.0])
    with torch.no_grad():
        reference = denoise(policy.dit, x_sigma, sigma, Conditioning(latent, mask, text))
        assert_close(run('denoise', x_sigma, sigma, latent, mask, text), reference, 1e-4,
                     'denoise step')
        video = torch.rand(3, 3, 5, 64, 64, generator=gen) * 2 - 1
        assert_close(run('vae_encoder', video), policy.vae.encode(video), 1e-4, 'VAE encoder')
        short = latent[:, :, :2]
        assert_close(run('vae_decoder', short), policy.vae.decode(short), 1e-4, 'VAE decoder')


def test_large_graphs_keep_their_weights_in_one_external_file(policy, tmp_path):
    """Over the threshold (2 GB by default: the 2b DiT) every weight goes to one .data file."""
    import onnx
    import onnxruntime

    from cosmos_policy_ros.model.diffusion import Conditioning, denoise
    from cosmos_policy_ros.runtime.onnx_export import export_onnx
    export_onnx(policy, tmp_path, parts=('denoise',), external_data_over=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'denoise.onnx', 'denoise.onnx.data', 'parts.json']
    assert (tmp_path / 'denoise.onnx.data').stat().st_size > 100_000
    model = onnx.load(str(tmp_path / 'denoise.onnx'), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL
               for t in model.graph.initializer if t.ByteSize() > 2048)
    session = onnxruntime.InferenceSession(str(tmp_path / 'denoise.onnx'),
                                           providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(2)
    latent = torch.randn(2, 16, 11, 8, 8, generator=gen)
    mask = torch.zeros(2, 11)
    mask[:, :5] = 1.0
    text, sigma = torch.randn(2, 16, 384, generator=gen), torch.tensor([30.0, 4.0])
    feeds = {'x_sigma': latent * 3, 'sigma': sigma, 'gt': latent, 'mask': mask, 'text': text}
    with torch.no_grad():
        reference = denoise(policy.dit, latent * 3, sigma, Conditioning(latent, mask, text))
    out = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    assert_close(torch.from_numpy(out), reference, 1e-4, 'denoise step (external data)')


def test_engine_cache_reuses_only_an_exact_match(tmp_path):
    """Keying and stale rebuilds on the onnxruntime path (the DiT step only, to stay quick)."""
    from cosmos_policy_ros.runtime.engine_cache import KEY_FILE, prepare_engines
    policy = tiny_policy()
    messages = []

    def prepare(identity=IDENTITY):
        return prepare_engines(policy, 'onnxruntime', tmp_path, max_batch=4, identity=identity,
                               parts=('denoise',), log=messages.append)

    first = prepare()
    assert first.built and (first.directory / 'denoise.ort.onnx').is_file()
    key = json.loads((first.directory / KEY_FILE).read_text())
    assert key['device_name'] == IDENTITY[0] and key['precision'] == 'float32'
    assert key['max_batch'] == 4 and key['shapes'] == {
        'denoise': {'x_sigma': [1, 16, 11, 8, 8], 'sigma': [1], 'gt': [1, 16, 11, 8, 8],
                    'mask': [1, 11], 'text': [1, 16, 384]}}
    again = prepare()
    assert not again.built and again.directory == first.directory
    # another runtime version (or GPU, precision, shapes): its own directory, freshly built
    other = prepare(identity=(*IDENTITY[:2], 'ort-new'))
    assert other.built and other.directory != first.directory
    # a directory whose key does not match (older code, tampered) is rebuilt, never used
    (first.directory / KEY_FILE).write_text(json.dumps(dict(key, runtime_version='ort-old')))
    assert prepare().built and any('rebuilding' in m for m in messages)
    assert json.loads((first.directory / KEY_FILE).read_text()) == key
    # a missing engine file too
    (first.directory / 'denoise.ort.onnx').unlink()
    assert prepare().built
    # new weights: a new key
    with torch.no_grad():
        policy.dit.final_layer.linear.weight.mul_(1.5)
    changed = prepare()
    assert changed.built and changed.directory != first.directory


def test_policy_runs_end_to_end_on_onnxruntime(policy, tmp_path):
    """export -> build -> run through the engine cache, as `runtime:=onnxruntime` does (the
    DiT step; the VAE graphs are checked above on a short clip)."""
    from cosmos_policy_ros.runtime.engine_cache import prepare_engines
    fast = tiny_policy()
    prepared = prepare_engines(fast, 'onnxruntime', tmp_path, parts=('denoise',),
                               log=lambda _: None)
    fast.parts = prepared.parts
    assert fast.runtime == 'onnxruntime' and prepared.built
    obs = observation(2)
    ours = fast.predict(obs, num_steps=3, seeds=[4, 5])
    reference = policy.predict(obs, num_steps=3, seeds=[4, 5])
    assert_close(torch.from_numpy(ours.actions), torch.from_numpy(reference.actions), 1e-3,
                 'action chunk (3 steps, 2 candidates)')
    np.testing.assert_allclose(ours.value, reference.value, atol=1e-4)


def test_unavailable_runtimes_say_what_to_do(policy):
    from cosmos_policy_ros.runtime.parts import RuntimeUnavailable, make_parts
    with pytest.raises(RuntimeUnavailable, match='CUDA'):
        make_parts(policy, 'cuda_graphs')
    with pytest.raises(RuntimeUnavailable, match='tensorrt|CUDA'):
        make_parts(policy, 'tensorrt')
    with pytest.raises(ValueError, match='not one of'):
        make_parts(policy, 'trt')


def test_tensorrt_engine_matches_pytorch(tmp_path):
    trt = pytest.importorskip('tensorrt', reason='TensorRT is not installed here (needs a '
                              'CUDA machine: pip install tensorrt)')
    if not torch.cuda.is_available():
        pytest.skip(f'TensorRT {trt.__version__} is installed but no CUDA GPU is visible')
    preset = dataclasses.replace(get_preset('tiny'), image_size=64)
    text = TextEmbeddings(preset.text_tokens, preset.text_dim,
                          {TASK: torch.randn(1, 6, preset.text_dim)})
    eager = CosmosPolicy.from_config(preset, text=text, device='cuda')
    fast = CosmosPolicy.from_config(preset, text=text, device='cuda', runtime='tensorrt',
                                    engine_cache=tmp_path)
    obs = observation(3)
    assert_close(torch.from_numpy(fast.predict(obs, num_steps=2).actions),
                 torch.from_numpy(eager.predict(obs, num_steps=2).actions), 5e-3, 'TensorRT')


def test_the_runtime_setting_reaches_the_model_from_nodes_and_eval():
    from types import SimpleNamespace

    from cosmos_policy_ros.evaluation.run import EvalConfig
    from cosmos_policy_ros.nodes.inference import load_model
    from cosmos_policy_ros.ros.evaluation import graph_args
    from cosmos_policy_ros.runtime.parts import RuntimeUnavailable
    from cosmos_policy_ros.schemas.policy import MODEL
    params = {param.name: param.default for param in MODEL}
    assert params['runtime'] == 'eager'
    with pytest.raises(RuntimeUnavailable, match='device:=cuda'):
        load_model(SimpleNamespace(**{**params, 'runtime': 'cuda_graphs'}))
    cfg = EvalConfig(checkpoint='sim_transfer_cube', runtime='onnxruntime')
    assert graph_args(cfg)['runtime'] == 'onnxruntime'


def test_build_engine_command_names_what_is_missing(capsys, monkeypatch):
    """(Its build/reuse path is prepare_engines, tested above; a build here loads MiniLM and
    the shipped model: too slow for CI.)"""
    from cosmos_policy_ros.cli import main
    monkeypatch.setattr('sys.argv', ['cosmos-policy-ros'])
    assert main(['build-engine', '--runtime', 'tensorrt']) == 2
    assert 'needs the policy on a CUDA device' in capsys.readouterr().out
    assert main(['build-engine', '--runtime', 'onnxruntime', '--max-batch', '0']) == 2
    assert '--max-batch must be >= 1' in capsys.readouterr().out
