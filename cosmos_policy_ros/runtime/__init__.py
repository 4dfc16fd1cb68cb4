"""Inference runtimes for CosmosPolicy: eager PyTorch, torch.compile, CUDA graphs, ONNX Runtime
and TensorRT behind one interface (runtime.parts), plus ONNX export and the engine cache.

ROS-free; accelerator packages (onnx, onnxruntime, tensorrt) are imported only when used,
and this module imports nothing (the node schemas read RUNTIMES without torch).
"""

RUNTIMES = ('eager', 'compile', 'cuda_graphs', 'onnxruntime', 'tensorrt')
