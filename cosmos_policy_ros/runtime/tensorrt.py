"""TensorRT engines from the exported ONNX graphs, and the parts that run them.

Build: a strongly typed network (TensorRT >= 10), so the precision of every layer is the
dtype the graph was exported in (export a bf16 policy for bf16 engines; fp16 likewise). One
optimisation profile per engine: batch 1..max_batch (opt 1), every other dimension fixed.
The kernel timing cache is loaded before and saved after each build.

FP8 (optional, Hopper/Ada, TensorRT >= 10.2): quantise the exported DiT with NVIDIA
TensorRT Model Optimizer (`pip install nvidia-modelopt`; `modelopt.onnx.quantization`
inserts Q/DQ nodes from ~128 calibration samples), then build the resulting ONNX here: a
strongly typed network takes the FP8 from the Q/DQ nodes. Check parity against the bf16
engine before deploying (the authors warn that numerics matter).

Run: torch CUDA tensors are bound by address and the engine is enqueued on torch's current
stream, so no copies leave the GPU.
"""
import json
from pathlib import Path

import torch

from cosmos_policy_ros.runtime.onnx_export import load_manifest
from cosmos_policy_ros.runtime.parts import ExportedParts, RuntimeUnavailable

WORKSPACE_BYTES = 8 << 30


def require_tensorrt(device: torch.device) -> str:
    """The TensorRT version; RuntimeUnavailable naming what is missing otherwise."""
    try:
        import tensorrt
    except ImportError:
        raise RuntimeUnavailable('runtime tensorrt needs the tensorrt package (pip install '
                                 "'cosmos-policy-ros[tensorrt]' on a CUDA machine); "
                                 'use runtime onnxruntime where TensorRT is absent') from None
    if device.type != 'cuda' or not torch.cuda.is_available():
        raise RuntimeUnavailable('runtime tensorrt needs the policy on a CUDA GPU (device:=cuda);'
                                 f' this policy runs on {device}')
    major = int(tensorrt.__version__.split('.')[0])
    if major < 10:
        raise RuntimeUnavailable(f'runtime tensorrt needs TensorRT >= 10 (strongly typed '
                                 f'networks, execute_async_v3); found {tensorrt.__version__}')
    return tensorrt.__version__


def build_engine(onnx_path: Path, engine_path: Path, timing_cache: Path, shapes: dict,
                 max_batch: int) -> None:
    """Parse onnx_path into a strongly typed network and write the serialised engine."""
    import tensorrt as trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(
        1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f'TensorRT could not parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file()
                                       else b'')
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for name, shape in shapes.items():
        rest = tuple(shape[1:])
        profile.set_shape(name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT failed to build an engine from {onnx_path} (see the '
                           'TensorRT log above)')
    engine_path.write_bytes(bytes(serialized))
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))


class _Engine:
    def __init__(self, path: Path, inputs: list[str], output: str, max_batch: int):
        import tensorrt as trt
        self.trt = trt
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
            path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f'TensorRT could not load {path}; delete it to rebuild')
        self.context = self.engine.create_execution_context()
        self.inputs, self.output, self.max_batch = inputs, output, max_batch

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        if tensors[0].shape[0] > self.max_batch:
            raise ValueError(f'TensorRT engine {self.output!r}: batch {tensors[0].shape[0]} > '
                             f'the {self.max_batch} it was built for; rebuild with '
                             'build-engine --max-batch N (N >= candidates x observations)')
        keep = []
        for name, tensor in zip(self.inputs, tensors):
            dtype = _torch_dtype(self.engine.get_tensor_dtype(name), self.trt)
            tensor = tensor.to(dtype).contiguous()
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        shape = tuple(self.context.get_tensor_shape(self.output))
        out = torch.empty(shape, device=tensors[0].device,
                          dtype=_torch_dtype(self.engine.get_tensor_dtype(self.output), self.trt))
        self.context.set_tensor_address(self.output, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError('TensorRT execute_async_v3 failed')
        return out.float()


def _torch_dtype(trt_dtype, trt) -> torch.dtype:
    return {trt.float32: torch.float32, trt.float16: torch.float16,
            trt.bfloat16: torch.bfloat16, trt.int64: torch.int64,
            trt.bool: torch.bool}[trt_dtype]


class TensorRTParts(ExportedParts):
    name = 'tensorrt'

    def __init__(self, directory: Path, policy):
        super().__init__(policy, load_manifest(Path(directory) / 'onnx')['parts'])
        max_batch = json.loads((Path(directory) / 'key.json').read_text())['max_batch']
        self.engines = {name: _Engine(Path(directory) / f'{name}.engine',
                                      list(spec['inputs']), spec['output'], max_batch)
                        for name, spec in self.specs.items()}

    def _run(self, name: str, *tensors: torch.Tensor) -> torch.Tensor:
        return self.engines[name](*tensors)
