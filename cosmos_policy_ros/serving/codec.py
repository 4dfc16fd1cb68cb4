"""Wire encodings of the policy server: msgpack (openpi) and JSON (/act), pickle-free.

msgpack: numpy arrays are maps {"__ndarray__": true, "data": <bin>, "dtype": <str>,
"shape": [..]} and scalars {"__npgeneric__": true, "data": x, "dtype": <str>}, with the keys
as msgpack bin, the layout of openpi_client.msgpack_numpy.
JSON: json_numpy's layout {"__numpy__": <base64>, "dtype": <descr>, "shape": [..]}.

Decoding never builds an array while parsing: an encoded array becomes a `PackedArray`
holder, and `to_array` turns it into an array once the caller knows which field it is (so an
error names the field). Only plain numeric dtypes are accepted (no object, void or string
arrays), sizes are checked before anything is allocated, msgpack extension types are refused,
and nothing is ever unpickled.
"""
import base64
import binascii
import json
import math
import re
from dataclasses import dataclass

import msgpack
import numpy as np


class DecodeError(ValueError):
    """A message is not valid msgpack/JSON, or an encoded array is malformed."""


# Byte order mark + kind + item size (numpy's dtype.str), or a plain dtype name.
_DTYPE_STR = re.compile(r'^[<>|=]?[biuf][1248]$')
_DTYPE_NAMES = ('bool', 'uint8', 'int8', 'uint16', 'int16', 'float16', 'uint32', 'int32',
                'float32', 'uint64', 'int64', 'float64')
MAX_NDIM = 4
MAX_ELEMENTS = 16 * 2**20


@dataclass(frozen=True)
class PackedArray:
    """An encoded array as received; `to_array` validates and builds it."""
    data: bytes
    dtype: object
    shape: object          # list of ints; None: a scalar (np.generic)
    scalar: object = None  # np.generic payload (msgpack), when shape is None


def parse_dtype(text) -> np.dtype:
    """A plain numeric dtype from its wire name ('<f4', '|u1', 'float32', ...), else raise."""
    if isinstance(text, bytes):
        text = text.decode('ascii', 'replace')
    if not isinstance(text, str) or not (_DTYPE_STR.match(text) or text in _DTYPE_NAMES):
        raise DecodeError(f'dtype {text!r} is not a plain numeric dtype (bool, int, uint, '
                          'float; e.g. "|u1", "<f4")')
    dtype = np.dtype(text)
    if dtype.kind not in 'biuf':
        raise DecodeError(f'dtype {text!r} is not a plain numeric dtype')
    return dtype


def _shape(shape) -> tuple:
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS
            for n in shape):
        raise DecodeError(f'shape {shape!r} must be a list of at most {MAX_NDIM} '
                          'non-negative ints')
    if math.prod(shape) > MAX_ELEMENTS:
        raise DecodeError(f'shape {list(shape)} has more than {MAX_ELEMENTS} elements')
    return tuple(shape)


def unpack_array(packed: PackedArray) -> np.ndarray:
    """The array a PackedArray holds (read-only for msgpack/base64 payloads)."""
    dtype = parse_dtype(packed.dtype)
    if packed.shape is None:
        if isinstance(packed.scalar, bool) or not isinstance(packed.scalar, (int, float)):
            raise DecodeError(f'numpy scalar data must be a number, got '
                              f'{type(packed.scalar).__name__}')
        try:
            return np.array(packed.scalar, dtype=dtype)
        except (OverflowError, ValueError) as exc:
            raise DecodeError(f'numpy scalar {packed.scalar!r} does not fit {dtype}') from exc
    shape = _shape(packed.shape)
    expected = math.prod(shape) * dtype.itemsize
    if len(packed.data) != expected:
        raise DecodeError(f'array data has {len(packed.data)} bytes; shape {list(shape)} of '
                          f'{dtype} needs {expected}')
    return np.frombuffer(packed.data, dtype=dtype).reshape(shape)


def to_array(value) -> np.ndarray:
    """A numeric array from a PackedArray, a number, or nested lists of numbers."""
    if isinstance(value, PackedArray):
        return unpack_array(value)
    if isinstance(value, (dict, str, bytes)) or value is None:
        raise DecodeError(f'expected an array (encoded numpy array or nested lists of numbers), '
                          f'got {type(value).__name__}')
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise DecodeError(f'not a rectangular array of numbers ({exc})') from exc
    if array.dtype.kind not in 'biuf':
        raise DecodeError('expected numbers only (nested lists must be rectangular and hold '
                          f'numbers), got dtype {array.dtype}')
    if array.ndim > MAX_NDIM:
        raise DecodeError(f'array has {array.ndim} dimensions (at most {MAX_NDIM})')
    return array


# -- msgpack ---------------------------------------------------------------------------------
def _key(mapping: dict, name: str):
    return mapping.get(name.encode(), mapping.get(name))


def _msgpack_hook(obj: dict):
    keys = {k.decode('latin-1') if isinstance(k, bytes) else k for k in obj}
    if '__ndarray__' in keys:
        if keys != {'__ndarray__', 'data', 'dtype', 'shape'}:
            raise DecodeError(f'encoded ndarray needs exactly the keys __ndarray__, data, dtype, '
                              f'shape; got {sorted(map(str, keys))}')
        data = _key(obj, 'data')
        if not isinstance(data, bytes):
            raise DecodeError(f'encoded ndarray data must be bin, got {type(data).__name__}')
        return PackedArray(data, _key(obj, 'dtype'), _key(obj, 'shape'))
    if '__npgeneric__' in keys:
        if keys != {'__npgeneric__', 'data', 'dtype'}:
            raise DecodeError('encoded numpy scalar needs exactly the keys __npgeneric__, '
                              f'data, dtype; got {sorted(map(str, keys))}')
        return PackedArray(b'', _key(obj, 'dtype'), None, _key(obj, 'data'))
    return obj


def _refuse_ext(code: int, data: bytes):
    raise DecodeError(f'msgpack extension type {code} is not accepted')


def unpack_msgpack(data: bytes, max_bytes: int) -> object:
    """Decode one msgpack message (openpi layout); raises DecodeError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f'expected a binary msgpack message, got {type(data).__name__}')
    if len(data) > max_bytes:
        raise DecodeError(f'message of {len(data)} bytes exceeds the limit of {max_bytes}')
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, object_hook=_msgpack_hook,
            ext_hook=_refuse_ext, max_bin_len=max_bytes, max_str_len=2**20,
            max_array_len=2**20, max_map_len=1024, use_list=True)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types on bad input
        raise DecodeError(f'invalid msgpack: {type(exc).__name__}: {exc}') from None


def _pack_default(obj):
    if isinstance(obj, np.ndarray) and obj.dtype.kind in 'biuf':
        return {b'__ndarray__': True, b'data': obj.tobytes(), b'dtype': obj.dtype.str,
                b'shape': list(obj.shape)}
    if isinstance(obj, np.generic) and obj.dtype.kind in 'biuf':
        return {b'__npgeneric__': True, b'data': obj.item(), b'dtype': obj.dtype.str}
    raise TypeError(f'cannot encode {type(obj).__name__} (numeric numpy arrays, numbers, '
                    'strings, lists and maps only)')


def pack_msgpack(obj) -> bytes:
    """Encode for the openpi protocol (openpi_client.msgpack_numpy can decode it)."""
    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


# -- JSON (json_numpy layout) ----------------------------------------------------------------
def _json_hook(obj: dict):
    if '__numpy__' not in obj:
        return obj
    if set(obj) != {'__numpy__', 'dtype', 'shape'}:
        raise DecodeError('json_numpy array needs exactly the keys __numpy__, dtype, shape; '
                          f'got {sorted(obj)}')
    encoded = obj['__numpy__']
    if not isinstance(encoded, str):
        raise DecodeError('json_numpy __numpy__ must be a base64 string')
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f'json_numpy __numpy__ is not valid base64 ({exc})') from None
    return PackedArray(data, obj['dtype'], obj['shape'])   # shape []: a numpy scalar


def loads_json(data, max_bytes: int) -> object:
    """Decode one JSON document, json_numpy arrays as PackedArray; raises DecodeError."""
    if len(data) > max_bytes:
        raise DecodeError(f'message of {len(data)} bytes exceeds the limit of {max_bytes}')
    try:
        return json.loads(data, object_hook=_json_hook)
    except DecodeError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError) as exc:
        raise DecodeError(f'invalid JSON: {exc}') from None


def _json_default(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in 'biuf':
        array = np.ascontiguousarray(obj)
        return {'__numpy__': base64.b64encode(array.tobytes()).decode('ascii'),
                'dtype': array.dtype.str, 'shape': list(array.shape)}
    raise TypeError(f'cannot encode {type(obj).__name__} as JSON')


def dumps_json(obj) -> str:
    """JSON text with numpy arrays in json_numpy's layout (json_numpy.loads decodes it)."""
    return json.dumps(obj, default=_json_default, allow_nan=False)
