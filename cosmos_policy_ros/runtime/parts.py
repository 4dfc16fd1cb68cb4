"""The three calls CosmosPolicy makes into its networks, per runtime.

    denoise(x_sigma, sigma_B, condition) -> x0      one sampler step (preconditioning + DiT)
    encode(video) -> latent                          VAE encoder, normalised latents
    decode(latent) -> video                          VAE decoder

All take and return float32 tensors on the policy's device; each runtime keeps the compute
dtype of the policy (bf16 on GPU, float32 on CPU).

Runtimes (`RUNTIMES`, the `runtime` parameter of the nodes and commands):
- eager:        the PyTorch modules as they are (the reference for every other runtime).
- compile:      torch.compile of the DiT and VAE (default inductor mode: autotuning the 2b
                GEMMs would take longer than the GPU benchmark's budget).
- cuda_graphs:  one CUDA graph per input shape for the denoising step, captured on first use
                and replayed (static shapes: the step count only changes the replay count).
- onnxruntime:  the exported ONNX graphs in ONNX Runtime (CUDA provider when present).
- tensorrt:     TensorRT engines built from the ONNX graphs (runtime/tensorrt.py); where
                TensorRT or CUDA is missing it says so (build-engine falls back to onnxruntime).
"""
from pathlib import Path

import torch

from cosmos_policy_ros.model.diffusion import Conditioning, denoise
from cosmos_policy_ros.runtime import RUNTIMES


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run here (no CUDA, package missing); the message says what to do."""


class EagerParts:
    name = 'eager'

    def __init__(self, dit: torch.nn.Module, vae: torch.nn.Module):
        self.dit, self.vae = dit, vae

    def denoise(self, x_sigma: torch.Tensor, sigma_B: torch.Tensor,
                condition: Conditioning) -> torch.Tensor:
        return denoise(self.dit, x_sigma, sigma_B, condition)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(video.to(self.vae.dtype)).float()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent.to(self.vae.dtype)).float()


class ExportedParts(EagerParts):
    """Parts whose exported graphs run outside PyTorch (onnxruntime, TensorRT). A part that
    was not built, or a shape it was not exported for (the full-video encode behind
    decode_future), runs in the eager modules. Subclasses run one built graph in `_run`."""

    def __init__(self, policy, specs: dict):
        super().__init__(policy.dit, policy.vae)
        self.specs = specs                   # part -> {'inputs': {name: shape}, 'output': ...}

    def _run(self, name: str, *tensors: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _exported(self, name: str, tensor: torch.Tensor) -> bool:
        if name not in self.specs:
            return False
        shape = next(iter(self.specs[name]['inputs'].values()))
        return list(tensor.shape[1:]) == shape[1:]

    def denoise(self, x_sigma, sigma_B, condition: Conditioning):
        if 'denoise' not in self.specs:
            return super().denoise(x_sigma, sigma_B, condition)
        return self._run('denoise', x_sigma, sigma_B, condition.gt_B_C_T_H_W,
                         condition.mask_B_T.float(), condition.crossattn_emb_B_N_D)

    def encode(self, video):
        if not self._exported('vae_encoder', video):
            return super().encode(video)
        return self._run('vae_encoder', video)

    def decode(self, latent):
        if not self._exported('vae_decoder', latent):
            return super().decode(latent)
        return self._run('vae_decoder', latent)


class CompiledParts(EagerParts):
    """torch.compile'd modules; the first call of each shape compiles (minutes for 2b)."""
    name = 'compile'

    def __init__(self, dit, vae):
        super().__init__(torch.compile(dit, dynamic=False), _CompiledVAE(vae))


class _CompiledVAE:
    def __init__(self, vae):
        self.dtype = vae.dtype
        self.encode = torch.compile(vae.encode, dynamic=False)
        self.decode = torch.compile(vae.decode, dynamic=False)


def check_available(runtime: str, device: str | torch.device) -> None:
    """Fail before any weights are loaded: ValueError for an unknown runtime,
    RuntimeUnavailable (naming the fix) when it cannot run on `device` here."""
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime {runtime!r} is not one of {list(RUNTIMES)}')
    device = torch.device(device)
    if runtime in ('cuda_graphs', 'tensorrt') and device.type != 'cuda':
        raise RuntimeUnavailable(f'runtime {runtime} needs the policy on a CUDA device '
                                 f'(device:=cuda), not {device}; use eager or onnxruntime on '
                                 'the CPU')
    if runtime == 'tensorrt':
        from cosmos_policy_ros.runtime.tensorrt import require_tensorrt
        require_tensorrt(device)
    if runtime == 'onnxruntime':
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise RuntimeUnavailable('runtime onnxruntime needs the onnxruntime package: '
                                     "pip install 'cosmos-policy-ros[onnx]'") from None


class CudaGraphParts(EagerParts):
    """The denoising step captured as a CUDA graph per input shape: a replay launches the
    whole DiT forward at once (no per-kernel Python/launch overhead). Inputs are copied into
    the graph's static buffers; the returned x0 is a fresh copy (the next replay reuses the
    output buffer). The VAE stays eager (two calls per chunk)."""
    name = 'cuda_graphs'

    def __init__(self, dit, vae):
        super().__init__(dit, vae)
        if not next(dit.parameters()).is_cuda:
            raise RuntimeUnavailable('runtime cuda_graphs needs the policy on a CUDA device '
                                     '(device:=cuda); use eager or onnxruntime on the CPU')
        self._graphs = {}

    def denoise(self, x_sigma, sigma_B, condition):
        inputs = (x_sigma, sigma_B, condition.gt_B_C_T_H_W, condition.mask_B_T,
                  condition.crossattn_emb_B_N_D)
        key = tuple((tuple(t.shape), t.dtype) for t in inputs)
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        graph, static_in, static_out = self._graphs[key]
        for buffer, value in zip(static_in, inputs):
            buffer.copy_(value)
        graph.replay()
        return static_out.clone()

    def _capture(self, inputs):
        static_in = [t.clone() for t in inputs]

        def step():
            condition = Conditioning(static_in[2], static_in[3], static_in[4])
            return denoise(self.dit, static_in[0], static_in[1], condition)

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):      # warm-up outside the graph (allocator, kernels)
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = step()
        return graph, static_in, static_out


def make_parts(policy, runtime: str, cache_dir: str | Path | None = None):
    """The parts object for `runtime`; onnxruntime and tensorrt export/build into cache_dir
    (default: the engine cache, runtime.engine_cache.default_cache_dir) on first use."""
    check_available(runtime, policy.device)
    if runtime == 'eager':
        return EagerParts(policy.dit, policy.vae)
    if runtime == 'compile':
        return CompiledParts(policy.dit, policy.vae)
    if runtime == 'cuda_graphs':
        return CudaGraphParts(policy.dit, policy.vae)
    from cosmos_policy_ros.runtime.engine_cache import prepare_engines
    return prepare_engines(policy, runtime, cache_dir).parts
