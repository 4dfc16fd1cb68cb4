"""Text embeddings: restricted unpickler, safetensors cache, unknown tasks, MiniLM, T5."""
import os
import pickle
from pathlib import Path

import pytest
import torch

from cosmos_policy_ros.model.text import (
    TextEmbeddingError,
    TextEmbeddings,
    UnsafePickleError,
    convert_pickle,
    load_embedding_cache,
    load_t5_pickle,
)

TASKS = ('fold shirt', 'put candies in bowl', 'put candy in bag')


@pytest.fixture
def table():
    gen = torch.Generator().manual_seed(0)
    return {task: torch.randn(1, 512, 1024, generator=gen).to(torch.bfloat16) for task in TASKS}


def test_released_style_pickle_loads(tmp_path, table):
    path = tmp_path / 'aloha_t5_embeddings.pkl'
    with path.open('wb') as file:
        pickle.dump(table, file)
    loaded = load_t5_pickle(path)
    assert sorted(loaded) == sorted(TASKS)
    for task in TASKS:
        assert loaded[task].dtype == torch.bfloat16 and loaded[task].shape == (1, 512, 1024)
        assert torch.equal(loaded[task], table[task])
    saved = tmp_path / 'saved.pt'               # a torch.save zip of the same dict also loads
    torch.save(table, saved)
    assert torch.equal(load_t5_pickle(saved)['fold shirt'], table['fold shirt'])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, table):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pkl'
    with path.open('wb') as file:
        pickle.dump({'fold shirt': table['fold shirt'], 'x': _Payload(marker)}, file)
    with pytest.raises(UnsafePickleError, match=r'refusing to load (posix|os)\.system'):
        load_t5_pickle(path)
    assert not marker.exists()
    zipped = tmp_path / 'evil.pt'
    torch.save({'x': _Payload(marker)}, zipped)
    with pytest.raises(UnsafePickleError):
        load_t5_pickle(zipped)
    assert not marker.exists()


def test_safetensors_cache_round_trip_and_unknown_task(tmp_path, table):
    pkl = tmp_path / 'emb.pkl'
    pkl.write_bytes(pickle.dumps(table))
    cache = convert_pickle(pkl, tmp_path / 'cache' / 'aloha_t5')
    assert cache.suffix == '.safetensors' and cache.with_suffix('.json').is_file()
    loaded = load_embedding_cache(cache)
    assert all(torch.equal(loaded[t], table[t]) for t in TASKS)
    text = TextEmbeddings.from_source(cache, tokens=512, dim=1024, text_encoder='t5')
    assert text.known_tasks() == sorted(TASKS)
    assert text.batch(['fold shirt', 'put candy in bag']).shape == (2, 512, 1024)
    with pytest.raises(TextEmbeddingError, match=r"unknown task 'fold the shirt'.*did you mean "
                       r"\['fold shirt'\].*Known tasks.*put candies in bowl"):
        text('fold the shirt')
    with pytest.raises(TextEmbeddingError, match='T5 text embeddings'):
        TextEmbeddings.from_source(None, tokens=512, dim=1024, text_encoder='t5')


def test_minilm_token_embeddings_padded_and_cached():
    text = TextEmbeddings.from_source('minilm', tokens=16, dim=384)
    emb = text('put the cube in the box')
    assert emb.shape == (1, 16, 384) and torch.isfinite(emb).all()
    real_tokens = int((emb.abs().sum(-1) > 0).sum())
    assert 5 <= real_tokens < 16                           # zero padding after the real tokens
    assert text('put the cube in the box') is emb          # cached
    other = text('insert the peg into the socket')
    assert not torch.allclose(emb, other)
    assert 'put the cube in the box' in text.known_tasks()
    wide = TextEmbeddings(tokens=8, dim=512, encoder=text.encoder)('fold shirt')
    assert wide.shape == (1, 8, 512) and wide[..., 384:].abs().sum() == 0


def test_online_t5_when_available():
    t5_dir = os.environ.get('COSMOS_T5_DIR')
    if not t5_dir or not Path(t5_dir).is_dir():
        pytest.skip('online T5 needs local T5 weights: set COSMOS_T5_DIR to a T5 model directory '
                    '(none is available offline here)')
    text = TextEmbeddings.from_source(t5_dir, tokens=512, dim=1024, text_encoder='t5')
    assert text('fold shirt').shape == (1, 512, 1024)
