"""Request and reply schemas of the two protocols the policy server speaks.

openpi (websocket + msgpack), one observation per message:
    {"state": float[14], "images": {"cam_high"|"cam_left_wrist"|"cam_right_wrist":
     uint8 HxWx3 or 3xHxW, "cam_low": ignored}, "prompt": str,
     optional "seed": int, "num_steps": int, "decode_future": bool}
    -> {"actions": float32[50, 14], "value": float, "policy_timing": {...},
        "server_timing": {...}, "model_timings": {...}, ["future_images": {cam: uint8}]}
/act (HTTP POST, JSON with json_numpy arrays, or {"encoded": "<that JSON as a string>"}):
    {"primary_image", "left_wrist_image", "right_wrist_image": uint8 HxWx3, "proprio":
     float[14], "task_description": str, optional "return_all_query_results": bool,
     "seed": int, "num_steps": int}
    -> {"actions": 50 x float32[14], "future_image_predictions": {"future_image",
        "future_wrist_image", "future_wrist_image2": uint8 HxWx3} or null,
        "value_prediction": float, ["all_*" lists], "server_timing": {...}}

State/proprio is the 14-d robot vector [left 6 joints, left gripper, right 6, right gripper]
(radians, grippers normalised 0 closed .. 1 open); the server normalises it. Every error is a
RequestError whose message starts with the field it is about.
"""
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.names import CAMERAS, CHUNK_LENGTH, STATE_DIM
from cosmos_policy_ros.serving.codec import DecodeError, to_array


class RequestError(ValueError):
    """A request does not match the schema; `field` names the offending field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f'{field}: {message}' if field else message)


@dataclass(frozen=True)
class Limits:
    """What the served model accepts."""
    image_sizes: tuple                    # accepted (H, W)
    max_num_steps: int = 100
    max_prompt_chars: int = 2000
    max_state_abs: float = 100.0          # radians / normalised grippers; larger = wrong units


@dataclass(frozen=True)
class Query:
    """One validated observation and its options (protocol-independent)."""
    images: dict                          # camera -> H x W x 3 uint8
    proprio: np.ndarray                   # (14,) float64 robot units
    prompt: str | None                    # None: the server's default prompt
    seed: int | None = None               # None: the server's running seed
    num_steps: int | None = None          # None: the server's default
    decode_future: bool = False
    return_all: bool = False              # /act return_all_query_results


OPENPI_KEYS = ('state', 'images', 'prompt', 'seed', 'num_steps', 'decode_future')
OPENPI_IGNORED_CAMERAS = ('cam_low',)     # openpi's ALOHA client may send it; not a model input
ACT_IMAGES = {'primary_image': 'cam_high', 'left_wrist_image': 'cam_left_wrist',
              'right_wrist_image': 'cam_right_wrist'}
ACT_FUTURE_IMAGES = {'cam_high': 'future_image', 'cam_left_wrist': 'future_wrist_image',
                     'cam_right_wrist': 'future_wrist_image2'}
ACT_KEYS = tuple(ACT_IMAGES) + ('proprio', 'task_description', 'return_all_query_results',
                                'seed', 'num_steps')


def _mapping(value, field: str, allowed: tuple) -> dict:
    if not isinstance(value, dict):
        raise RequestError(field, f'expected a map with keys {list(allowed)}, got '
                           f'{type(value).__name__}')
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise RequestError(field, f'unknown key(s) {[str(k) for k in unknown][:10]}; '
                           f'allowed: {list(allowed)}')
    return value


def _require(mapping: dict, key: str, where: str = ''):
    if key not in mapping:
        raise RequestError(f'{where}{key}', 'missing (required)')
    return mapping[key]


def _array(value, field: str) -> np.ndarray:
    try:
        return to_array(value)
    except DecodeError as exc:
        raise RequestError(field, str(exc)) from None


def image(value, field: str, limits: Limits, channels_first: bool = False) -> np.ndarray:
    """H x W x 3 uint8 (3 x H x W too when `channels_first`), of an accepted size."""
    array = _array(value, field)
    if array.dtype != np.uint8:
        if array.dtype.kind in 'iu' and array.size and (array.min() < 0 or array.max() > 255):
            raise RequestError(field, 'expected uint8 RGB values 0..255, got values '
                               f'{array.min()}..{array.max()}')
        if array.dtype.kind not in 'iu':
            raise RequestError(field, f'expected uint8 RGB (0-255), got dtype {array.dtype}; '
                               'convert with (x * 255).round().astype(np.uint8) if it is '
                               'float in [0, 1]')
        array = array.astype(np.uint8)
    if channels_first and array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        array = np.moveaxis(array, 0, 2)
    if array.ndim != 3 or array.shape[2] != 3:
        layout = 'H x W x 3 or 3 x H x W' if channels_first else 'H x W x 3'
        raise RequestError(field, f'expected {layout} RGB, got shape {list(array.shape)}')
    if tuple(array.shape[:2]) not in limits.image_sizes:
        raise RequestError(field, f'got a {array.shape[0]}x{array.shape[1]} image; accepted '
                           f'(HxW): {sorted(limits.image_sizes)} (resize without padding)')
    return np.ascontiguousarray(array)


def state(value, field: str, limits: Limits) -> np.ndarray:
    array = _array(value, field)
    if array.dtype.kind == 'b':
        raise RequestError(field, f'expected {STATE_DIM} numbers, got booleans')
    if array.shape != (STATE_DIM,):
        raise RequestError(field, f'expected shape [{STATE_DIM}] ([left 6 joints, left '
                           f'gripper, right 6 joints, right gripper]), got {list(array.shape)}')
    array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise RequestError(field, f'NaN/inf at indices {bad.tolist()}')
    large = np.flatnonzero(np.abs(array) > limits.max_state_abs)
    if large.size:
        raise RequestError(field, f'values at indices {large.tolist()} exceed '
                           f'{limits.max_state_abs} in magnitude; send radians and grippers '
                           'normalised 0 (closed) .. 1 (open)')
    return array


def text(value, field: str, limits: Limits) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode('utf-8')
        except UnicodeDecodeError:
            raise RequestError(field, 'is not valid UTF-8') from None
    if not isinstance(value, str):
        raise RequestError(field, f'expected a string, got {type(value).__name__}')
    if not value.strip():
        raise RequestError(field, 'is empty')
    if len(value) > limits.max_prompt_chars:
        raise RequestError(field, f'has {len(value)} characters (at most '
                           f'{limits.max_prompt_chars})')
    return value


def integer(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise RequestError(field, f'expected an integer, got {type(value).__name__}')
    if not low <= int(value) <= high:
        raise RequestError(field, f'{int(value)} is outside [{low}, {high}]')
    return int(value)


def boolean(value, field: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise RequestError(field, f'expected true/false, got {type(value).__name__}')
    return bool(value)


def _options(mapping: dict, limits: Limits) -> dict:
    options = {}
    if 'seed' in mapping:
        options['seed'] = integer(mapping['seed'], 'seed', 0, 2**32 - 1)   # numpy RandomState
    if 'num_steps' in mapping:
        options['num_steps'] = integer(mapping['num_steps'], 'num_steps', 1,
                                       limits.max_num_steps)
    return options


def parse_openpi(obj, limits: Limits) -> Query:
    """A Query from a decoded openpi observation."""
    obj = _mapping(obj, '', OPENPI_KEYS)
    images_in = _mapping(_require(obj, 'images'), 'images',
                         tuple(CAMERAS) + OPENPI_IGNORED_CAMERAS)
    images = {cam: image(_require(images_in, cam, 'images.'), f'images.{cam}', limits,
                         channels_first=True) for cam in CAMERAS}
    prompt = text(obj['prompt'], 'prompt', limits) if 'prompt' in obj else None
    decode_future = boolean(obj['decode_future'], 'decode_future') \
        if 'decode_future' in obj else False
    return Query(images=images, proprio=state(_require(obj, 'state'), 'state', limits),
                 prompt=prompt, decode_future=decode_future, **_options(obj, limits))


def parse_act(obj, limits: Limits) -> Query:
    """A Query from a decoded /act payload (after unwrapping {"encoded": ...})."""
    obj = _mapping(obj, '', ACT_KEYS)
    images = {cam: image(_require(obj, key), key, limits) for key, cam in ACT_IMAGES.items()}
    return_all = boolean(obj['return_all_query_results'], 'return_all_query_results') \
        if 'return_all_query_results' in obj else False
    return Query(images=images, proprio=state(_require(obj, 'proprio'), 'proprio', limits),
                 prompt=text(_require(obj, 'task_description'), 'task_description', limits),
                 return_all=return_all, **_options(obj, limits))


# -- replies ---------------------------------------------------------------------------------
def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def openpi_reply(result, server_timing: dict) -> dict:
    """Only `actions` is an array with the chunk as its first axis (openpi's ActionChunkBroker
    slices every array of a reply along its first axis); future images only on request."""
    reply = {'actions': result.actions.astype(np.float32),
             'value': float(result.value),
             'policy_timing': {'infer_ms': _ms(result.infer_s)},
             'server_timing': {key: _ms(value) for key, value in server_timing.items()},
             'model_timings': {key: float(value) for key, value in result.timings.items()},
             'seed': result.seed, 'num_steps': result.num_steps}
    if result.future_images is not None:
        reply['future_images'] = result.future_images
    return reply


def act_reply(result, query: Query, server_timing: dict) -> dict:
    """The reference deploy script's reply (one query: the `all_*` lists have one entry)."""
    actions = [row for row in result.actions.astype(np.float32)]
    future = (None if result.future_images is None else
              {ACT_FUTURE_IMAGES[cam]: rgb for cam, rgb in result.future_images.items()
               if cam in ACT_FUTURE_IMAGES})
    value = float(result.value)
    reply = {'actions': actions, 'future_image_predictions': future, 'value_prediction': value}
    if query.return_all:
        reply.update(all_actions=[actions], all_future_image_predictions=[future],
                     all_value_predictions=[value], all_actions_by_depth=[[actions]],
                     all_future_image_predictions_by_depth=[[future]],
                     all_value_predictions_by_depth=[[value]])
    reply['server_timing'] = {key: _ms(value) for key, value in server_timing.items()}
    return reply


def check_actions(value, field: str = 'actions') -> np.ndarray:
    """A reply's action chunk: (50, 14) finite numbers (the client's check)."""
    array = _array(value, field)
    if array.dtype.kind not in 'iuf' or array.shape != (CHUNK_LENGTH, STATE_DIM):
        raise RequestError(field, f'expected [{CHUNK_LENGTH}, {STATE_DIM}] numbers, got '
                           f'{array.dtype} {list(array.shape)}')
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise RequestError(field, 'contains NaN/inf')
    return array
