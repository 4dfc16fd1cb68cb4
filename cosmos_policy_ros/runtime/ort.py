"""ONNX Runtime: the optimised graphs of the engine cache as CosmosPolicy parts.

The CPU provider everywhere; the CUDA provider when onnxruntime-gpu and a GPU are present.
Parts that were not built, and shapes the graphs were not exported for (the full-video
encode behind decode_future), run in the eager modules.
"""
from pathlib import Path

import numpy as np
import torch

from cosmos_policy_ros.runtime.onnx_export import load_manifest
from cosmos_policy_ros.runtime.parts import ExportedParts


def _providers(device: torch.device) -> list[str]:
    import onnxruntime
    if device.type == 'cuda' and 'CUDAExecutionProvider' in \
            onnxruntime.get_available_providers():
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


def _options(optimized_path: Path | None = None):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()   # share the cores like torch
    # EXTENDED, not ALL: the saved graph then holds no CPU-specific (NCHWc) layout
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        # > 2 GB graphs (2b DiT): weights into one external file beside the optimised graph
        options.add_session_config_entry(
            'session.optimized_model_external_initializers_file_name',
            optimized_path.name + '.data')
        options.add_session_config_entry(
            'session.optimized_model_external_initializers_min_size_in_bytes', '1048576')
    return options


def optimize_model(onnx_path: Path, target: Path, device: torch.device) -> None:
    """ONNX Runtime's 'engine build': the graph after all its optimisations for this
    machine, saved to target (loading it later skips the optimisation passes)."""
    import onnxruntime
    onnxruntime.InferenceSession(str(onnx_path), _options(target), providers=_providers(device))
    if not target.is_file():
        raise RuntimeError(f'onnxruntime did not write the optimised model {target}')


class OrtParts(ExportedParts):
    name = 'onnxruntime'

    def __init__(self, directory: Path, policy, suffix: str = '.ort.onnx'):
        import onnxruntime
        super().__init__(policy, load_manifest(Path(directory) / 'onnx')['parts'])
        self.device = policy.device
        self.sessions = {
            name: onnxruntime.InferenceSession(str(Path(directory) / f'{name}{suffix}'),
                                               _options(), providers=_providers(self.device))
            for name in self.specs}

    def _run(self, name: str, *tensors: torch.Tensor) -> torch.Tensor:
        feeds = {key: tensor.detach().float().cpu().numpy()
                 for key, tensor in zip(self.specs[name]['inputs'], tensors)}
        out = self.sessions[name].run(None, feeds)[0]
        return torch.from_numpy(np.ascontiguousarray(out)).to(self.device)
