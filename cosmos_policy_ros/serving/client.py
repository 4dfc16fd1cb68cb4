"""The client side of the openpi protocol, ROS-free (no torch needed).

PolicyClient: one websocket connection to a policy server (ours, or any openpi server):
server metadata on connect, `infer(observation) -> reply`, with a reply timeout.
RemotePolicy: the policy node's `backend:=remote`. It has CosmosPolicy.predict's contract
(observation in robot units -> (1, 50, 14) actions, value, timings), sends the node's seed and
step count so a remote chunk equals the local one, and reconnects with exponential backoff.
It never returns a late reply: on a timeout the connection is dropped (so the late reply can
not be taken for the next one) and the call fails; the caller publishes nothing, and the
controller's watchdog holds the arms until chunks come again.
"""
import inspect
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.names import CAMERAS, CHUNK_LENGTH, IMAGE_HEIGHT, IMAGE_WIDTH, STATE_DIM
from cosmos_policy_ros.serving import codec
from cosmos_policy_ros.serving.schema import RequestError, check_actions

TOKEN_ENV = 'COSMOS_POLICY_TOKEN'
MAX_REPLY_BYTES = 64 * 2**20


class ServerError(RuntimeError):
    """The server answered with an error (the connection stays usable)."""


class ServerUnavailable(ConnectionError):
    """No usable connection to the server (down, unreachable, too slow, incompatible)."""


def check_metadata(metadata, uri: str) -> dict:
    """The server must be a cosmos-policy-ros server with the same chunk shape."""
    if not isinstance(metadata, dict) or metadata.get('policy') != 'cosmos_policy':
        raise ServerUnavailable(f'{uri} is not a cosmos-policy-ros policy server (metadata '
                                f'{str(metadata)[:200]})')
    shape = (metadata.get('action_horizon'), metadata.get('action_dim'))
    if shape != (CHUNK_LENGTH, STATE_DIM):
        raise ServerUnavailable(f'{uri} serves {shape[0]}x{shape[1]} action chunks; this '
                                f'robot needs {CHUNK_LENGTH}x{STATE_DIM}')
    return metadata


class PolicyClient:
    """One websocket connection (openpi protocol): metadata on connect, then infer()."""

    def __init__(self, uri: str, token: str | None = None, open_timeout: float = 5.0,
                 max_message_bytes: int = MAX_REPLY_BYTES):
        import websockets.sync.client
        if not uri.startswith(('ws://', 'wss://')):
            raise ValueError(f'server {uri!r}: expected ws://host:port or wss://host:port')
        self.uri, self.max_message_bytes = uri, max_message_bytes
        headers = {'Authorization': f'Api-Key {token}'} if token else None
        connect = websockets.sync.client.connect
        # websockets >= 17 wants `legacy=True` to hand back the connection outside a `with`.
        legacy = {'legacy': True} if 'legacy' in inspect.signature(connect).parameters else {}
        self._ws = connect(uri, additional_headers=headers, compression=None,
                           max_size=max_message_bytes, open_timeout=open_timeout,
                           close_timeout=1.0, ping_interval=None, **legacy)
        try:
            first = self._ws.recv(timeout=open_timeout)
            if isinstance(first, str):
                raise ServerError(first)
            self.metadata = codec.unpack_msgpack(first, max_message_bytes)
        except BaseException:
            self._ws.close()
            raise

    def infer(self, observation: dict, timeout: float | None = None) -> dict:
        """Send one observation, wait for its reply; TimeoutError after `timeout` seconds
        (then close this client: its reply may still come)."""
        self._ws.send(codec.pack_msgpack(observation))
        reply = self._ws.recv(timeout=timeout)
        if isinstance(reply, str):
            raise ServerError(reply)
        reply = codec.unpack_msgpack(reply, self.max_message_bytes)
        if not isinstance(reply, dict):
            raise ServerError(f'reply is a {type(reply).__name__}, not a map')
        try:
            reply['actions'] = check_actions(reply.get('actions'))
        except RequestError as exc:
            raise ServerError(f'malformed reply: {exc}') from None
        return reply

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> 'PolicyClient':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Observation:
    """model.policy.Observation's fields, without importing torch (a robot PC needs none)."""
    images: dict          # camera -> H x W x 3 uint8 RGB
    proprio: np.ndarray   # (14,) robot units
    task: str


@dataclass(frozen=True)
class RemoteOutput:
    """What CosmosPolicy.predict returns, for the fields the policy node reads."""
    actions: np.ndarray          # (1, 50, 14) robot units
    value: np.ndarray            # (1,)
    future_images: dict | None   # camera -> (1, H, W, 3) uint8
    timings: dict                # seconds: server's model stages + round trip


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """PIL bicubic to size x size: the model's own first step (model.preprocess.resize), done
    before sending so a 480x640 frame travels as 256x256 with the same model input."""
    from PIL import Image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


class RemotePolicy:
    def __init__(self, uri: str, token: str | None = None, timeout: float = 10.0,
                 open_timeout: float = 3.0, backoff: tuple = (0.5, 5.0), on_connect=None):
        self.uri, self.timeout, self.open_timeout = uri, timeout, open_timeout
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self.backoff, self.on_connect = backoff, on_connect
        self.metadata = None
        self._client = None
        self._delay = backoff[0]
        self._next_attempt = 0.0
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self.counts = {'connects': 0, 'failures': 0, 'timeouts': 0, 'server_errors': 0,
                       'replies': 0}
        self.last_error = ''
        self.rtt_s = None

    # -- connection --------------------------------------------------------------------------
    def _failed(self, reason: str, counter: str = 'failures') -> None:
        with self._lock:
            client, self._client = self._client, None
            self.counts[counter] += 1
            self.last_error = reason
            self._next_attempt = time.monotonic() + self._delay
            self._delay = min(self._delay * 2.0, self.backoff[1])
        if client is not None:
            client.close()

    def _connected(self) -> PolicyClient:
        if self._client is not None:
            return self._client
        wait = self._next_attempt - time.monotonic()
        if wait > 0:                           # back off; the next call brings a fresh obs
            self._closing.wait(wait)
            raise ServerUnavailable(f'{self.uri}: reconnecting ({self.last_error})')
        if self._closing.is_set():
            raise ServerUnavailable(f'{self.uri}: closed')
        try:
            client = PolicyClient(self.uri, self.token, self.open_timeout)
            try:
                check_metadata(client.metadata, self.uri)
            except ServerUnavailable:
                client.close()
                raise
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            reason = f'{type(exc).__name__}: {exc}'
            self._failed(reason)
            raise ServerUnavailable(f'{self.uri} unreachable ({reason}); retrying in '
                                    f'{self._next_attempt - time.monotonic():.1f} s') from None
        with self._lock:
            self._client, self.metadata = client, client.metadata
            self._delay = self.backoff[0]
            self.counts['connects'] += 1
            self.last_error = ''
        if self.on_connect is not None:
            self.on_connect(client.metadata)
        return client

    # -- the predict contract ----------------------------------------------------------------
    def request(self, observation, num_steps: int, seed: int, decode_future: bool,
                client_size: int | None) -> dict:
        """The openpi observation for one Observation (images, proprio, task)."""
        images = {}
        for camera in CAMERAS:
            rgb = np.asarray(observation.images[camera])
            if client_size and rgb.shape[:2] == (IMAGE_HEIGHT, IMAGE_WIDTH):
                rgb = resize_rgb(rgb, client_size)
            images[camera] = np.ascontiguousarray(rgb, dtype=np.uint8)
        obs = {'state': np.asarray(observation.proprio, dtype=np.float64), 'images': images,
               'prompt': observation.task, 'seed': int(seed), 'num_steps': int(num_steps)}
        if decode_future:
            obs['decode_future'] = True
        return obs

    def predict(self, observation, num_steps: int = 10, seeds=0,
                decode_future: bool = False) -> RemoteOutput:
        if not isinstance(seeds, (int, np.integer)):
            raise ValueError('RemotePolicy.predict: one int seed (one candidate per query)')
        client = self._connected()
        obs = self.request(observation, num_steps, int(seeds), decode_future,
                           client.metadata.get('client_image_size'))
        start = time.perf_counter()
        try:
            reply = client.infer(obs, self.timeout)
        except ServerError as exc:
            with self._lock:
                self.counts['server_errors'] += 1
                self.last_error = str(exc)
            raise
        except TimeoutError:
            self._failed(f'no reply within {self.timeout} s', 'timeouts')
            raise ServerUnavailable(f'{self.uri}: no reply within {self.timeout} s; dropped '
                                    'the connection') from None
        except Exception as exc:  # noqa: BLE001 - connection lost mid-request
            self._failed(f'{type(exc).__name__}: {exc}')
            raise ServerUnavailable(f'{self.uri}: connection lost ({type(exc).__name__}: '
                                    f'{exc})') from None
        rtt = time.perf_counter() - start
        with self._lock:
            self.counts['replies'] += 1
            self.rtt_s = rtt
        timings = {k: float(v) for k, v in (reply.get('model_timings') or {}).items()
                   if isinstance(v, (int, float))}
        server_infer = (reply.get('server_timing') or {}).get('infer_ms')
        if isinstance(server_infer, (int, float)):
            timings['server_infer'] = server_infer / 1e3
        timings['round_trip'] = rtt
        future = None
        if decode_future and isinstance(reply.get('future_images'), dict):
            future = {cam: codec.to_array(rgb)[None]
                      for cam, rgb in reply['future_images'].items()}
        value = reply.get('value', float('nan'))
        return RemoteOutput(actions=reply['actions'][None],
                            value=np.array([value if isinstance(value, (int, float))
                                            else float('nan')], dtype=np.float32),
                            future_images=future, timings=timings)

    def status(self) -> dict:
        with self._lock:
            retry = max(0.0, self._next_attempt - time.monotonic())
            return {'server': self.uri, 'connected': self._client is not None,
                    **self.counts, 'last_error': self.last_error,
                    'retry_in_s': round(retry, 2) if self._client is None else 0.0,
                    'rtt_ms': round(self.rtt_s * 1e3, 1) if self.rtt_s is not None else -1.0}

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
