"""ONNX export of the three networks CosmosPolicy runs: one denoising step (preconditioning +
DiT), the VAE encoder (the conditioning prefix) and the VAE decoder (the whole latent video).

Each graph has a dynamic batch axis (best-of-N planning batches candidates) and the static
frame/latent sizes of the policy's layout and preset. Graphs larger than 2 GB (the 2b DiT)
keep their weights in one external `<name>.onnx.data` file beside `<name>.onnx` (the protobuf
limit; TensorRT's parser wants one data file). `export_onnx` writes `parts.json` describing
the inputs, shapes and dtype, which the runtimes and the engine cache read.

Letters: B batch, C latent channels, T latent frames, P pixel frames, H/W size, N text tokens.
"""
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from cosmos_policy_ros.model.diffusion import Conditioning, denoise

PROTOBUF_LIMIT = 2 * 2**30
OPSET = 17
MANIFEST = 'parts.json'
PARTS = ('denoise', 'vae_encoder', 'vae_decoder')


class DenoiseStep(nn.Module):
    """(x_sigma, sigma_B, gt, mask_B_T, text) -> x0: one network evaluation of the sampler;
    the mask is float (1 = conditioning frame) so every input is a plain float tensor."""

    def __init__(self, dit: nn.Module):
        super().__init__()
        self.dit = dit

    def forward(self, x_sigma_B_C_T_H_W: Tensor, sigma_B: Tensor, gt_B_C_T_H_W: Tensor,
                mask_B_T: Tensor, text_B_N_D: Tensor) -> Tensor:
        condition = Conditioning(gt_B_C_T_H_W, mask_B_T > 0.5, text_B_N_D)
        return denoise(self.dit, x_sigma_B_C_T_H_W, sigma_B, condition).float()


class VAEEncode(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, video_B_3_P_H_W: Tensor) -> Tensor:
        return self.vae.encode(video_B_3_P_H_W).float()


class VAEDecode(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latent_B_C_T_H_W: Tensor) -> Tensor:
        return self.vae.decode(latent_B_C_T_H_W).float()


@dataclass(frozen=True)
class PartSpec:
    """One exported graph: file, input names and shapes (batch first, exported at batch 1)."""
    name: str
    file: str
    inputs: dict          # input name -> shape list
    output: str
    dtype: str            # the network's compute dtype at export


def part_inputs(policy) -> dict[str, dict[str, list[int]]]:
    """Input name -> shape (batch 1) of each part, from the policy's preset and layout."""
    from cosmos_policy_ros.model.vae import pixel_frames
    preset, layout = policy.preset, policy.layout
    z, size, frames = preset.vae.z_dim, preset.latent_size, layout.num_frames
    latent = [1, z, frames, size, size]
    prefix = pixel_frames(layout.num_condition_frames_policy)
    return {
        'denoise': {'x_sigma': latent, 'sigma': [1], 'gt': latent, 'mask': [1, frames],
                    'text': [1, preset.text_tokens, preset.text_dim]},
        'vae_encoder': {'video': [1, 3, prefix, preset.image_size, preset.image_size]},
        'vae_decoder': {'latent': latent},
    }


def _modules(policy) -> dict[str, nn.Module]:
    return {'denoise': DenoiseStep(policy.dit), 'vae_encoder': VAEEncode(policy.vae),
            'vae_decoder': VAEDecode(policy.vae)}


def _example(shape: list[int], name: str, device) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    if name == 'sigma':
        return torch.full(shape, 10.0, device=device)
    if name == 'mask':
        mask = torch.zeros(shape)
        mask[:, :5] = 1.0
        return mask.to(device)
    return torch.randn(shape, generator=gen).clamp(-1, 1).to(device)


def export_onnx(policy, out_dir: str | Path, parts: tuple[str, ...] = PARTS,
                external_data_over: int = PROTOBUF_LIMIT,
                shapes: dict | None = None) -> dict[str, PartSpec]:
    """Export `parts` of the policy to out_dir; returns name -> PartSpec and writes parts.json.
    Weights go to one external data file when a graph's tensors exceed external_data_over.
    `shapes` overrides part_inputs per part (e.g. a short clip for a quick VAE check). The
    VAE graphs are unrolled over frames: exporting them takes ~0.5 min (encoder) and ~2 min
    (decoder, 11 latent frames) on a CPU, the DiT step seconds."""
    import onnx
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shapes, modules = {**part_inputs(policy), **(shapes or {})}, _modules(policy)
    dtypes = {'denoise': policy.dit.dtype, 'vae_encoder': policy.vae.dtype,
              'vae_decoder': policy.vae.dtype}
    specs = {}
    for name in parts:
        if name not in modules:
            raise ValueError(f'export_onnx: unknown part {name!r}; parts are {list(PARTS)}')
        inputs = shapes[name]
        args = tuple(_example(shape, key, policy.device) for key, shape in inputs.items())
        output = {'denoise': 'x0', 'vae_encoder': 'latent', 'vae_decoder': 'video'}[name]
        path = out_dir / f'{name}.onnx'
        dynamic = {key: {0: 'batch'} for key in inputs} | {output: {0: 'batch'}}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')       # tracer warnings on the shape checks
            torch.onnx.export(modules[name].eval(), args, str(path), dynamo=False,
                              opset_version=OPSET, input_names=list(inputs),
                              output_names=[output], dynamic_axes=dynamic,
                              do_constant_folding=True)
        _consolidate(path, external_data_over, onnx)
        specs[name] = PartSpec(name, path.name, inputs, output, str(dtypes[name]).split('.')[-1])
    manifest = {'preset': policy.preset.name, 'parts': {k: asdict(v) for k, v in specs.items()},
                'digest': {k: file_digest(out_dir / v.file) for k, v in specs.items()}}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return specs


def _consolidate(path: Path, external_data_over: int, onnx) -> None:
    """Re-save with every weight in one `<name>.onnx.data` file when the weights are large
    (the exporter may scatter them over many files); small graphs stay self-contained."""
    model = onnx.load(str(path), load_external_data=True)
    size = sum(t.ByteSize() for t in model.graph.initializer)
    for stale in path.parent.glob(f'{path.name}.data'):
        stale.unlink()
    if size > external_data_over:
        onnx.save_model(model, str(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=f'{path.name}.data',
                        size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def file_digest(onnx_path: Path) -> str:
    """sha256 of the graph and its external data (what an engine was built from)."""
    digest = hashlib.sha256()
    for path in (onnx_path, onnx_path.with_name(onnx_path.name + '.data')):
        if path.is_file():
            with path.open('rb') as f:
                for block in iter(lambda: f.read(1 << 20), b''):
                    digest.update(block)
    return digest.hexdigest()


def load_manifest(onnx_dir: str | Path) -> dict:
    path = Path(onnx_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f'{path} missing: export the policy first '
                                '(`cosmos-policy-ros build-engine`, or runtime.export_onnx)')
    return json.loads(path.read_text())
