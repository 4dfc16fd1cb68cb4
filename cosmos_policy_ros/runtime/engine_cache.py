"""The engine cache: ONNX export -> engine build -> parts, keyed so a stale engine is rebuilt.

An engine is only valid for the exact weights, shapes, precision, accelerator and runtime
version it was built with. Its key holds all of them:

    runtime (tensorrt | onnxruntime), device name, compute capability, runtime version,
    precision, the batch range and input shapes of every part, a digest of the weights, and
    the export format version.

The cache directory of a key is `<cache>/<preset>-<runtime>-<sha256(key)[:16]>/` with the
ONNX graphs (`onnx/`), the built engines (`<part>.engine` for TensorRT, `<part>.ort.onnx`
(ONNX Runtime's optimised graph) otherwise), a TensorRT timing cache, and `key.json`. A
directory is reused only when its key.json equals the current key and every engine file is
there; otherwise it is rebuilt from scratch. Another GPU or TensorRT version gets another
directory, so machines can share one cache.
"""
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cosmos_policy_ros.runtime.onnx_export import PARTS, export_onnx, part_inputs
from cosmos_policy_ros.runtime.parts import RuntimeUnavailable

FORMAT_VERSION = 1          # bump when the export changes what a graph computes
KEY_FILE = 'key.json'
ENGINE_SUFFIX = {'tensorrt': '.engine', 'onnxruntime': '.ort.onnx'}
DEFAULT_MAX_BATCH = 8       # best-of-8 planning in one call
# The decoder only serves decode_future (off by default) and its unrolled 11-frame graph is
# slow to export; build it with parts=PARTS (build-engine --parts).
DEFAULT_PARTS = ('denoise', 'vae_encoder')


def default_cache_dir() -> Path:
    """$COSMOS_POLICY_ENGINE_CACHE, else ~/.cache/cosmos_policy_ros/engines."""
    return Path(os.environ.get('COSMOS_POLICY_ENGINE_CACHE',
                               Path.home() / '.cache' / 'cosmos_policy_ros' / 'engines'))


@dataclass(frozen=True)
class EngineKey:
    runtime: str
    device_name: str
    compute_capability: str
    runtime_version: str
    precision: str
    max_batch: int
    shapes: dict                # part -> {input: shape at batch 1}, the parts built
    weights_digest: str
    format_version: int = FORMAT_VERSION

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def weights_digest(*modules: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(f'{name}:{tensor.dtype}:{tuple(tensor.shape)}'.encode())
            data = tensor.detach().reshape(-1).contiguous().cpu()
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b'')
    return digest.hexdigest()


def accelerator_identity(runtime: str, device: torch.device) -> tuple[str, str, str]:
    """(device name, compute capability, runtime version) of this machine; raises
    RuntimeUnavailable when the runtime's package or device is missing."""
    if runtime == 'tensorrt':
        from cosmos_policy_ros.runtime import tensorrt as trt_runtime
        version = trt_runtime.require_tensorrt(device)
        major, minor = torch.cuda.get_device_capability(device)
        return torch.cuda.get_device_name(device), f'{major}.{minor}', version
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeUnavailable('runtime onnxruntime needs the onnxruntime package: '
                                 "pip install 'cosmos-policy-ros[onnx]'") from None
    if device.type == 'cuda':
        major, minor = torch.cuda.get_device_capability(device)
        return torch.cuda.get_device_name(device), f'{major}.{minor}', onnxruntime.__version__
    return f'cpu {cpu_model()}', '', onnxruntime.__version__


def cpu_model() -> str:
    """The CPU's model name: ONNX Runtime's fully optimised graphs are CPU-specific."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def engine_key(policy, runtime: str, max_batch: int = DEFAULT_MAX_BATCH,
               identity: tuple[str, str, str] | None = None,
               parts: tuple[str, ...] = DEFAULT_PARTS) -> EngineKey:
    name, capability, version = identity or accelerator_identity(runtime, policy.device)
    shapes = part_inputs(policy)
    unknown = sorted(set(parts) - set(shapes))
    if unknown or not parts:
        raise ValueError(f'engine parts {unknown or "()"}: choose from {list(PARTS)}')
    return EngineKey(runtime, name, capability, version, str(policy.dtype).split('.')[-1],
                     max_batch, {p: shapes[p] for p in PARTS if p in parts},
                     weights_digest(policy.dit, policy.vae))


@dataclass
class PreparedEngines:
    directory: Path
    key: EngineKey
    built: bool                 # False: reused from the cache
    build_seconds: float
    parts: object               # the runtime's parts (denoise/encode/decode)


def engine_dir(cache_dir: Path, preset: str, key: EngineKey) -> Path:
    return Path(cache_dir) / f'{preset}-{key.runtime}-{key.digest()[:16]}'


def is_current(directory: Path, key: EngineKey) -> bool:
    """The directory holds engines for exactly this key (and all of them)."""
    key_file = directory / KEY_FILE
    if not key_file.is_file():
        return False
    try:
        stored = json.loads(key_file.read_text())
    except json.JSONDecodeError:
        return False
    suffix = ENGINE_SUFFIX[key.runtime]
    return stored == key.as_dict() and all(
        (directory / f'{part}{suffix}').is_file() for part in key.shapes)


def prepare_engines(policy, runtime: str, cache_dir: str | Path | None = None,
                    max_batch: int = DEFAULT_MAX_BATCH,
                    identity: tuple[str, str, str] | None = None,
                    parts: tuple[str, ...] = DEFAULT_PARTS, log=print) -> PreparedEngines:
    """Reuse the cached engines of this policy on this machine, or export and build them.
    `parts` not built run eager. identity overrides (device name, compute capability,
    version), for tests."""
    if runtime not in ENGINE_SUFFIX:
        raise ValueError(f'prepare_engines: runtime {runtime!r} is not one of '
                         f'{list(ENGINE_SUFFIX)}')
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = engine_key(policy, runtime, max_batch, identity, parts)
    directory = engine_dir(cache_dir, policy.preset.name, key)
    built, start = False, time.perf_counter()
    if not is_current(directory, key):
        if directory.exists():
            log(f'engine cache: {directory} does not match this policy/machine; rebuilding')
            shutil.rmtree(directory)
        _build(policy, key, directory, log)
        built = True
    seconds = time.perf_counter() - start
    if runtime == 'tensorrt':
        from cosmos_policy_ros.runtime.tensorrt import TensorRTParts
        parts = TensorRTParts(directory, policy)
    else:
        from cosmos_policy_ros.runtime.ort import OrtParts
        parts = OrtParts(directory, policy, suffix=ENGINE_SUFFIX[runtime])
    return PreparedEngines(directory, key, built, seconds, parts)


def timing_cache_path(directory: Path, key: EngineKey) -> Path:
    """TensorRT's kernel timing cache, shared by every build on this GPU and TensorRT
    version (it makes rebuilds after a weight change much faster)."""
    tag = hashlib.sha256(f'{key.device_name}|{key.compute_capability}|'
                         f'{key.runtime_version}'.encode()).hexdigest()[:16]
    return directory.parent / f'timing-{tag}.cache'


def _build(policy, key: EngineKey, directory: Path, log) -> None:
    partial = directory.with_name(directory.name + '.partial')
    shutil.rmtree(partial, ignore_errors=True)
    onnx_dir = partial / 'onnx'
    log(f'engine cache: exporting ONNX graphs to {onnx_dir}')
    export_onnx(policy, onnx_dir, parts=tuple(key.shapes))
    suffix = ENGINE_SUFFIX[key.runtime]
    for part in key.shapes:
        target = partial / f'{part}{suffix}'
        log(f'engine cache: building {target.name} ({key.runtime} {key.runtime_version}, '
            f'{key.precision}, batch 1..{key.max_batch})')
        if key.runtime == 'tensorrt':
            from cosmos_policy_ros.runtime.tensorrt import build_engine
            build_engine(onnx_dir / f'{part}.onnx', target, timing_cache_path(directory, key),
                         key.shapes[part], key.max_batch)
        else:
            from cosmos_policy_ros.runtime.ort import optimize_model
            optimize_model(onnx_dir / f'{part}.onnx', target, policy.device)
    # key.json last, then an atomic rename: an interrupted build is never taken as current
    (partial / KEY_FILE).write_text(json.dumps(key.as_dict(), indent=1, sort_keys=True))
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(directory)
