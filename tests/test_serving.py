"""The policy server (ROS-free): other stacks' real clients, safety rules, fuzzing, the remote
backend's reconnects.

A tiny random-weight model at 64 px (the `tiny` preset's structure, 1 denoising step) answers,
so a reply costs a fraction of a second on CPU. Every server binds a loopback address:
127.0.0.1, or 127.0.0.2 where a test needs an address other than the default.
"""
import base64
import dataclasses
import json
import pickle
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

from cosmos_policy_ros.names import CAMERAS
from cosmos_policy_ros.serving import codec, schema
from cosmos_policy_ros.serving.client import (
    Observation,
    PolicyClient,
    RemotePolicy,
    ServerError,
    ServerUnavailable,
)
from cosmos_policy_ros.serving.server import (
    ConfigError,
    PolicyServer,
    ServerConfig,
    check_bind,
)
from cosmos_policy_ros.serving.service import PolicyService

pytestmark = [pytest.mark.usefixtures('one_torch_thread'),
              # openpi-client 0.1.2 connects the pre-17 way; websockets 17 warns about it.
              pytest.mark.filterwarnings('ignore:connect\\(\\) must be used:DeprecationWarning')]
PROMPT = 'transfer the cube'
SIZE = 64
TOKEN = 'test-token-0123456789abcdef'
ACT_KEYS = {'primary_image': 'cam_high', 'left_wrist_image': 'cam_left_wrist',
            'right_wrist_image': 'cam_right_wrist'}


def frames(seed: int, size=(SIZE, SIZE)) -> dict:
    rng = np.random.default_rng(seed)
    return {cam: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for cam in CAMERAS}


def proprio(seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 100).uniform(-1, 1, 14)


@pytest.fixture(scope='module')
def model():
    from cosmos_policy_ros.model.config import get_preset
    from cosmos_policy_ros.model.policy import CosmosPolicy
    preset = dataclasses.replace(get_preset('tiny'), image_size=SIZE, name='tiny_64')
    return CosmosPolicy.from_config(preset, text='minilm', init_seed=0)


def local(model, images, state, seed, steps=1):
    from cosmos_policy_ros.model.policy import Observation
    return model.predict(Observation(images=images, proprio=state, task=PROMPT),
                         num_steps=steps, seeds=seed)


@pytest.fixture(scope='module')
def server(model):
    service = PolicyService(model, num_steps=1, seed=0, default_prompt=PROMPT,
                            info={'preset': 'tiny_64', 'untrained': True})
    with PolicyServer(service, ServerConfig(port=0)) as running:
        yield running


class StubModel:
    """Stands in for CosmosPolicy where only the protocol matters: actions = proprio + seed,
    after `delay` seconds."""
    preset = types.SimpleNamespace(image_size=SIZE)

    def __init__(self, delay: float = 0.0):
        self.delay, self.calls = delay, 0

    def predict(self, observation, num_steps, seeds, decode_future=False):
        self.calls += 1
        time.sleep(self.delay)
        actions = np.tile(np.asarray(observation.proprio, np.float32), (1, 50, 1)) + seeds
        return types.SimpleNamespace(actions=actions, value=np.array([0.25]),
                                     future_images=None, timings={'stub': 0.0})


def stub_server(host='127.0.0.1', port=0, delay=0.0, **config) -> PolicyServer:
    service = PolicyService(StubModel(delay), num_steps=1, default_prompt=PROMPT)
    return PolicyServer(service, ServerConfig(host=host, port=port, **config)).start()


def act_body(images, state, **extra) -> dict:
    return {**{key: images[cam] for key, cam in ACT_KEYS.items()}, 'proprio': state,
            'task_description': PROMPT, **extra}


# -- openpi: the real openpi-client ---------------------------------------------------------
def test_openpi_client_gets_metadata_and_the_local_chunk(model, server):
    client_module = pytest.importorskip('openpi_client.websocket_client_policy',
                                        reason='pip install --no-deps openpi-client==0.1.2')
    client = client_module.WebsocketClientPolicy(server.url)
    metadata = client.get_server_metadata()
    assert metadata['policy'] == 'cosmos_policy'
    assert (metadata['action_horizon'], metadata['action_dim']) == (50, 14)
    assert metadata['untrained'] is True
    images, state = frames(1), proprio(1)
    # openpi's ALOHA client: channels-first uint8 images, cam_low too, float32 state.
    obs = {'state': state.astype(np.float32), 'prompt': PROMPT,
           'images': {**{cam: np.moveaxis(rgb, 2, 0) for cam, rgb in images.items()},
                      'cam_low': np.zeros((3, SIZE, SIZE), np.uint8)}, 'seed': 5}
    reply = client.infer(obs)
    expected = local(model, images, state.astype(np.float32), seed=5)
    assert reply['actions'].shape == (50, 14) and reply['actions'].dtype == np.float32
    np.testing.assert_array_equal(reply['actions'], expected.actions[0])
    assert reply['value'] == pytest.approx(float(expected.value[0]), abs=1e-6)
    assert reply['server_timing']['infer_ms'] > 0 and 'infer_ms' in reply['policy_timing']
    assert reply['seed'] == 5 and reply['num_steps'] == 1
    # openpi's own chunk runtime slices the reply along the chunk axis.
    broker_module = pytest.importorskip('openpi_client.action_chunk_broker')
    broker = broker_module.ActionChunkBroker(client, action_horizon=25)
    first, second = broker.infer(obs), broker.infer(obs)
    np.testing.assert_array_equal(first['actions'], expected.actions[0][0])
    np.testing.assert_array_equal(second['actions'], expected.actions[0][1])


def test_openpi_errors_name_the_field_and_keep_the_connection(server):
    client_module = pytest.importorskip('openpi_client.websocket_client_policy')
    client = client_module.WebsocketClientPolicy(server.url)
    images = {cam: np.moveaxis(rgb, 2, 0) for cam, rgb in frames(2).items()}
    cases = [({'state': np.zeros(13), 'images': images}, 'state: expected shape [14]'),
             ({'state': np.full(14, np.nan), 'images': images}, 'state: NaN/inf'),
             ({'state': np.zeros(14), 'images': {'cam_high': images['cam_high']}},
              'images.cam_left_wrist: missing'),
             ({'state': np.zeros(14), 'images': {**images, 'cam_high': np.zeros((3, 5, 5),
                                                                                np.uint8)}},
              'images.cam_high: got a 5x5 image'),
             ({'state': np.zeros(14), 'images': images, 'stat': 1}, "unknown key(s) ['stat']"),
             ({'state': np.zeros(14), 'images': images, 'num_steps': 1000},
              'num_steps: 1000 is outside [1, 100]')]
    for obs, message in cases:
        with pytest.raises(RuntimeError, match=r'request error: ' + _re(message)):
            client.infer(obs)
    reply = client.infer({'state': np.zeros(14), 'images': images})   # same connection
    assert reply['actions'].shape == (50, 14)


def _re(text: str) -> str:
    import re
    return re.escape(text)


# -- /act: a real HTTP client, json_numpy as the reference client encodes ----------------------
def test_healthz_and_act_match_the_reference_fields(model, server):
    requests = pytest.importorskip('requests')
    json_numpy = pytest.importorskip('json_numpy', reason='pip install json-numpy==2.1.1')
    health = requests.get(f'{server.http_url}/healthz', timeout=10)
    assert health.status_code == 200 and health.text == 'OK\n'
    images, state = frames(3), proprio(3)
    expected = local(model, images, state, seed=11)
    session = requests.Session()
    reply = session.post(f'{server.http_url}/act', timeout=30,
                         data=json_numpy.dumps(act_body(images, state, seed=11)))
    assert reply.status_code == 200, reply.text
    body = json_numpy.loads(reply.text)
    assert set(body) == {'actions', 'future_image_predictions', 'value_prediction',
                         'server_timing'}
    assert len(body['actions']) == 50 and all(a.shape == (14,) for a in body['actions'])
    np.testing.assert_array_equal(np.stack(body['actions']), expected.actions[0])
    assert body['value_prediction'] == pytest.approx(float(expected.value[0]), abs=1e-6)
    assert body['future_image_predictions'] is None     # server started without decoding
    # {"encoded": ...}: the request is a JSON string, and so is the reply (double-encoded).
    reply = session.post(f'{server.http_url}/act', timeout=30, json={
        'encoded': json_numpy.dumps(act_body(images, state, seed=11,
                                             return_all_query_results=True))})
    assert reply.status_code == 200, reply.text
    body = json_numpy.loads(json_numpy.loads(reply.text))
    np.testing.assert_array_equal(np.stack(body['actions']), expected.actions[0])
    assert len(body['all_actions']) == len(body['all_value_predictions']) == 1
    assert body['all_value_predictions_by_depth'] == [[body['value_prediction']]]
    # Plain nested lists (clients without json_numpy) give the same chunk.
    plain = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
             for k, v in act_body(images, state, seed=11).items()}
    reply = session.post(f'{server.http_url}/act', json=plain, timeout=30)
    np.testing.assert_array_equal(np.stack(json_numpy.loads(reply.text)['actions']),
                                  expected.actions[0])


def test_act_errors_are_http_errors_naming_the_field(server):
    requests = pytest.importorskip('requests')
    url = f'{server.http_url}/act'
    images, state = frames(4), proprio(4)
    good = act_body(images, state)

    def post(body, **kwargs):
        data = body if isinstance(body, (bytes, str)) else codec.dumps_json(body)
        return requests.post(url, data=data, timeout=30, **kwargs)

    cases = [({**good, 'proprio': np.zeros(13)}, 'proprio'),
             ({k: v for k, v in good.items() if k != 'left_wrist_image'}, 'left_wrist_image'),
             ({**good, 'primary_image': images['cam_high'].astype(np.float32)},
              'primary_image'),
             ({**good, 'task_description': 7}, 'task_description'),
             ({**good, 'extra': 1}, ''),
             ({'encoded': 5}, 'encoded'),
             ({'encoded': codec.dumps_json(good), 'x': 1}, 'encoded')]
    for body, field in cases:
        reply = post(body)
        assert reply.status_code == 400 and reply.json()['field'] == field, reply.text
        assert reply.json()['error'].startswith(f'{field}: ' if field else '')
    reply = post(codec.dumps_json(good).replace('"proprio": {', '"proprio": [NaN], "x": {'))
    assert reply.status_code == 400
    nan = {**good, 'proprio': np.where(np.arange(14) == 3, np.nan, state)}
    assert 'NaN/inf at indices [3]' in post(nan).json()['error']
    assert post(b'{"not json').status_code == 400
    assert requests.get(url, timeout=10).status_code == 405
    assert requests.post(f'{server.http_url}/nothing', data=b'{}', timeout=10).status_code == 404
    assert post(good, headers={'Origin': 'http://example.invalid'}).status_code == 403


def test_act_returns_decoded_future_images_when_enabled(model):
    requests = pytest.importorskip('requests')
    service = PolicyService(model, num_steps=1, default_prompt=PROMPT, decode_future=True)
    with PolicyServer(service, ServerConfig(port=0)) as running:
        reply = requests.post(f'{running.http_url}/act', timeout=60,
                              data=codec.dumps_json(act_body(frames(5), proprio(5))))
    assert reply.status_code == 200, reply.text
    future = reply.json()['future_image_predictions']
    assert set(future) == {'future_image', 'future_wrist_image', 'future_wrist_image2'}
    for encoded in future.values():
        image = codec.to_array(codec.loads_json(json.dumps(encoded), 2**24))
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8


# -- the remote backend --------------------------------------------------------------------
def test_remote_policy_chunk_equals_the_local_one(model, server):
    """What backend:=remote publishes: raw 480x640 frames travel as 256x256 (the model's own
    first resize), the node's seed and steps go along, and the chunk is the local one."""
    from cosmos_policy_ros.model.policy import Observation
    connected = []
    remote = RemotePolicy(server.url, on_connect=connected.append)
    try:
        for seed in (3, 4):
            observation = Observation(images=frames(seed, (480, 640)), proprio=proprio(seed),
                                      task=PROMPT)
            out = remote.predict(observation, num_steps=1, seeds=seed)
            expected = model.predict(observation, num_steps=1, seeds=seed)
            np.testing.assert_array_equal(out.actions, expected.actions)
            np.testing.assert_allclose(out.value, expected.value, atol=1e-6)
            assert out.timings['round_trip'] >= out.timings['server_infer'] > 0
        assert len(connected) == 1 and remote.status()['replies'] == 2
    finally:
        remote.close()


def predict_once_back(remote, observation, seed: int, within: float = 10.0):
    """The first chunk the client gets once the server answers again (reconnect with backoff)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return remote.predict(observation, seeds=seed)
        except ServerUnavailable:
            assert time.monotonic() < deadline, f'no reply within {within} s'


def test_remote_policy_drops_a_late_reply_and_reconnects_with_backoff():
    slow = stub_server(delay=1.0)
    remote = RemotePolicy(slow.url, timeout=0.3, backoff=(0.05, 0.2))
    observation = Observation(images=frames(0), proprio=np.zeros(14), task=PROMPT)
    try:
        with pytest.raises(ServerUnavailable, match='no reply within 0.3 s'):
            remote.predict(observation, seeds=1)
        assert remote.status()['timeouts'] == 1 and not remote.status()['connected']
        slow.service.model.delay = 0.0
        time.sleep(1.2)                        # the late reply of seed 1 is sent by now
        out = predict_once_back(remote, observation, seed=2)
        np.testing.assert_array_equal(out.actions, np.full((1, 50, 14), 2.0, np.float32))
        assert remote.status()['connects'] == 2
        port = slow.port
        slow.stop()                            # outage: failures back off, then reconnect
        failures_at = []
        for _ in range(4):
            with pytest.raises(ServerUnavailable):
                remote.predict(observation, seeds=3)
            failures_at.append(time.monotonic())
        status = remote.status()
        assert status['failures'] >= 2 and not status['connected'] and status['last_error']
        slow = stub_server(port=port)
        out = predict_once_back(remote, observation, seed=4)
        np.testing.assert_array_equal(out.actions, np.full((1, 50, 14), 4.0, np.float32))
        assert remote.status()['connects'] == 3
    finally:
        remote.close()
        slow.stop()


def test_remote_policy_refuses_an_incompatible_server_and_reports_server_errors():
    running = stub_server()
    try:
        running.service.metadata = lambda: {'policy': 'cosmos_policy', 'action_horizon': 25,
                                            'action_dim': 14}
        remote = RemotePolicy(running.url, backoff=(0.01, 0.01))
        with pytest.raises(ServerUnavailable, match='serves 25x14 action chunks'):
            remote.predict(Observation(images=frames(0), proprio=np.zeros(14), task='x'))
        del running.service.metadata
        time.sleep(0.05)
        with pytest.raises(ServerError, match='state: NaN/inf'):
            remote.predict(Observation(images=frames(0), proprio=np.full(14, np.nan),
                                       task='x'))
        remote.close()
    finally:
        running.stop()


# -- safe by default -----------------------------------------------------------------------
def test_a_token_is_required_beyond_the_default_loopback_address():
    check_bind('127.0.0.1', None)
    check_bind('localhost', None)
    for host in ('127.0.0.2', '0.0.0.0', '192.168.1.20', '::'):   # checked, never bound
        with pytest.raises(ConfigError, match='needs a token'):
            check_bind(host, None)
    with pytest.raises(ConfigError, match='at least 16'):
        check_bind('127.0.0.2', 'short')
    with pytest.raises(ConfigError, match='needs a token'):
        PolicyServer(PolicyService(StubModel()), ServerConfig(host='127.0.0.2'))
    result = subprocess.run([sys.executable, '-m', 'cosmos_policy_ros.cli', 'serve', '--host',
                             '127.0.0.2', '--port', '0'], capture_output=True, text=True,
                            timeout=120, env={**_env(), 'COSMOS_POLICY_TOKEN': ''})
    assert result.returncode == 2 and 'needs a token' in result.stdout, result.stdout


def _env() -> dict:
    import os
    return dict(os.environ)


def test_token_is_enforced_on_websocket_and_act_but_not_healthz():
    requests = pytest.importorskip('requests')
    from websockets.exceptions import InvalidStatus
    running = stub_server(host='127.0.0.2', token=TOKEN)
    try:
        assert running.url.startswith('ws://127.0.0.2:')
        for token in (None, 'wrong-token-0123456789'):
            with pytest.raises(InvalidStatus, match='401'):
                PolicyClient(running.url, token=token)
        openpi = pytest.importorskip('openpi_client.websocket_client_policy')
        with pytest.raises(InvalidStatus, match='401'):
            openpi.WebsocketClientPolicy(running.url)
        client = openpi.WebsocketClientPolicy(running.url, api_key=TOKEN)
        obs = {'state': np.zeros(14), 'images': frames(0)}
        assert client.infer(obs)['actions'].shape == (50, 14)
        body = codec.dumps_json(act_body(frames(0), np.zeros(14)))
        url = f'{running.http_url}/act'
        assert requests.post(url, data=body, timeout=10).status_code == 401
        assert requests.post(url, data=body, timeout=10, headers={
            'Authorization': 'Bearer nope-0123456789abcdef'}).status_code == 401
        assert requests.post(url, data=body, timeout=10, headers={
            'Authorization': f'Bearer {TOKEN}'}).status_code == 200
        assert requests.get(f'{running.http_url}/healthz', timeout=10).status_code == 200
        assert running.stats['auth_failures'] >= 5
    finally:
        running.stop()


def test_message_and_head_size_limits():
    requests = pytest.importorskip('requests')
    from websockets.exceptions import ConnectionClosed
    running = stub_server(max_message_bytes=2**20)
    try:
        with PolicyClient(running.url) as client:
            with pytest.raises(ConnectionClosed) as closed:
                client.infer({'state': np.zeros(14), 'images': frames(0, (480, 640))}, 10)
            assert closed.value.rcvd.code == 1009          # message too big
        reply = requests.post(f'{running.http_url}/act', data=b'x' * (2**20 + 1), timeout=10)
        assert reply.status_code == 413
        reply = requests.get(f'{running.http_url}/healthz', timeout=10,
                             headers={'X-Big': 'y' * 20000})
        assert reply.status_code == 431
        assert running.stats['too_large'] >= 2
    finally:
        running.stop()


def test_never_unpickles(tmp_path, monkeypatch):
    """Object-dtype payloads (a pickle that would write a file) are refused in both codecs."""
    calls = []
    for name in ('loads', 'load'):
        monkeypatch.setattr(pickle, name, lambda *a, **k: calls.append(a))
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ('x',))

    payload = pickle.dumps(Evil())
    limits = schema.Limits(image_sizes=((SIZE, SIZE),))
    packed = codec.unpack_msgpack(codec.msgpack.packb(
        {'state': {b'__ndarray__': True, b'data': payload, b'dtype': '|O', b'shape': [1]}}),
        2**20)
    with pytest.raises(schema.RequestError, match="state: dtype '|O'"):
        schema.state(packed['state'], 'state', limits)
    text = json.dumps({'proprio': {'__numpy__': base64.b64encode(payload).decode(),
                                   'dtype': '|O', 'shape': [1]}})
    with pytest.raises(schema.RequestError, match='not a plain numeric dtype'):
        schema.state(codec.loads_json(text, 2**20)['proprio'], 'proprio', limits)
    with pytest.raises(codec.DecodeError, match='extension type'):
        codec.unpack_msgpack(codec.msgpack.packb(codec.msgpack.ExtType(1, payload)), 2**20)
    assert not marker.exists() and not calls


# -- fuzzing -------------------------------------------------------------------------------
def valid_openpi(rng) -> dict:
    return {'state': rng.uniform(-1, 1, 14), 'prompt': PROMPT,
            'images': {cam: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                       for cam in CAMERAS}}


def packed(array: np.ndarray, **override) -> dict:
    data = {b'__ndarray__': True, b'data': array.tobytes(), b'dtype': array.dtype.str,
            b'shape': list(array.shape)}
    data.update({k.encode(): v for k, v in override.items()})
    return data


def bad_values(rng) -> list:
    """Values no field accepts as a state / image."""
    return [np.zeros(13), np.zeros((14, 1)), np.float64(3.0), np.full(14, np.inf),
            np.where(np.arange(14) == rng.integers(14), np.nan, 0.0), np.full(14, 1e6),
            np.zeros(14, np.complex64).real.astype(bool), 'text', b'\xff\xfe', None, [],
            [[1, 2], [3]], {'a': 1}, True, 2**63,
            packed(np.zeros(14), dtype='|O'), packed(np.zeros(14), dtype='<U4'),
            packed(np.zeros(14), dtype='|V8'), packed(np.zeros(14), dtype=7),
            packed(np.zeros(14), shape=[-1]), packed(np.zeros(14), shape=[2**40]),
            packed(np.zeros(14), shape='14'), packed(np.zeros(14), shape=[1] * 9),
            packed(np.zeros(14), data=b'\x00' * 3), packed(np.zeros(14), data='str'),
            {b'__ndarray__': True, b'data': b''}, {b'__npgeneric__': True, b'data': 'x',
                                                   b'dtype': '<f8'},
            packed(np.zeros((SIZE, SIZE, 3), np.float32)),
            packed(np.zeros((SIZE, SIZE), np.uint8)),
            packed(np.zeros((SIZE + 1, SIZE, 3), np.uint8)),
            packed(np.zeros((4, SIZE, SIZE), np.uint8))]


BAD_OPTIONS = [('prompt', 12), ('prompt', 'x' * 5000), ('prompt', ' '), ('prompt', b'\xff'),
               ('prompt', None), ('seed', -1), ('seed', 2**32), ('seed', 2.5), ('seed', True),
               ('num_steps', 0), ('num_steps', 101), ('num_steps', '3'),
               ('decode_future', 1), ('decode_future', 'yes'), ('decode_future', True),
               ('junk', 1), (b'state', 1)]
BAD_ACT_FIELDS = {
    'proprio': [[1, 2], 'NaN', None, 5, [[0.0] * 14], [True] * 14, [1e9] * 14,
                {'__numpy__': 'not base64!', 'dtype': '<f8', 'shape': [14]},
                {'__numpy__': '', 'dtype': '<f8', 'shape': [14]},
                {'__numpy__': '', 'dtype': 'O', 'shape': [0]},
                {'__numpy__': 'AAAA', 'dtype': '<f8', 'shape': [14], 'extra': 1}],
    'primary_image': [[[300, -1, 2]] * 3, [[[0, 0, 'a']]], 'NaN', None, 5, [[1, 2, 3]],
                      {'__numpy__': '', 'dtype': '|u1', 'shape': [0, 0, 3]},
                      {'__numpy__': 'AAAA', 'dtype': '|u1', 'shape': [1, 1, 3]}],
    'task_description': [[1, 2], None, 5, '', '   ', 'x' * 3000, {'a': 'b'}],
    'return_all_query_results': ['yes', 1, None],
    'seed': [-5, 'x', 1.5, 2**40],
}


def fuzz_openpi_messages(rng, count: int) -> list:
    """Mutated observations, garbage and truncated msgpack, extension types, deep nesting."""
    bad = bad_values(rng)
    messages = []
    for i in range(count):
        kind = i % 10
        obs = valid_openpi(rng)
        if kind == 0:
            obs['state'] = bad[rng.integers(len(bad))]
        elif kind == 1:
            cam = CAMERAS[rng.integers(3)]
            obs['images'][cam] = bad[rng.integers(len(bad))]
        elif kind == 2:
            del obs[['state', 'images'][rng.integers(2)]]
        elif kind == 3:
            key, value = BAD_OPTIONS[rng.integers(len(BAD_OPTIONS))]
            obs[key] = value
        elif kind == 4:
            obs['images'] = [{}, [], 'cams', {'cam_high': obs['images']['cam_high']},
                             {**obs['images'], 'cam_extra': obs['images']['cam_high']}][
                rng.integers(5)]
        if kind <= 4:
            messages.append(codec.pack_msgpack(obs))
        elif kind == 5:
            messages.append(rng.bytes(int(rng.integers(0, 3000))))
        elif kind == 6:
            whole = codec.pack_msgpack(obs)
            messages.append(whole[:int(rng.integers(1, len(whole)))])
        elif kind == 7:
            messages.append(codec.msgpack.packb({'state': codec.msgpack.ExtType(
                int(rng.integers(0, 127)), rng.bytes(20)), 'images': {}}))
        elif kind == 8:
            depth = int(rng.integers(100, 3000))
            messages.append(b'\x91' * depth + b'\x00')     # [[[...0...]]]
        else:
            messages.append(codec.msgpack.packb({1: 2, 'state': [1.0] * 14}))
    return messages


def fuzz_act_bodies(rng, count: int) -> list:
    good = codec.dumps_json(act_body(frames(7), proprio(7)))
    bodies = []
    for i in range(count):
        kind = i % 9
        body = json.loads(good)
        if kind == 0:
            bodies.append(rng.bytes(int(rng.integers(0, 3000))))
        elif kind == 1:
            bodies.append(good[:int(rng.integers(1, len(good)))].encode())
        elif kind == 2:
            field = list(BAD_ACT_FIELDS)[rng.integers(len(BAD_ACT_FIELDS))]
            body[field] = BAD_ACT_FIELDS[field][rng.integers(len(BAD_ACT_FIELDS[field]))]
            bodies.append(json.dumps(body).encode())
        elif kind == 3:
            del body[list(body)[rng.integers(len(body))]]
            bodies.append(json.dumps(body).encode())
        elif kind == 4:
            wrapped = {'encoded': [5, None, '{"x":', '[]', '"{}"', good[:-1]][rng.integers(6)]}
            if rng.integers(3) == 0:
                wrapped = {'encoded': good, 'extra': 1}
            bodies.append(json.dumps(wrapped).encode())
        elif kind == 5:
            depth = int(rng.integers(500, 5000))
            bodies.append(b'[' * depth + b']' * depth)
        elif kind == 6:
            bodies.append(good.replace('"proprio": {',
                                       '"proprio": [NaN, Infinity, 1e999], "y": {').encode())
        elif kind == 7:
            bodies.append(('{"proprio": ' + '9' * 5000 + '}').encode())
        else:
            body['proprio'] = {'__numpy__': base64.b64encode(rng.bytes(112)).decode(),
                               'dtype': '<f8', 'shape': [14]}      # random float64s
            body['task_description'] = ''
            bodies.append(json.dumps(body).encode())
    return bodies


def fuzz_raw_requests(rng, count: int) -> list:
    heads = [b'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n',
             b'POST /act HTTP/1.1\r\nContent-Length: -5\r\n\r\n',
             b'POST /act HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
             b'POST /act HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
             b'BREW /pot HTTP/1.1\r\n\r\n', b'GET /healthz HTTP/9.9\r\n\r\n',
             b'GET /healthz HTTP/1.1\r\n folded: header\r\n\r\n',
             b'GET /healthz HTTP/1.1\r\nX: ' + b'y' * 20000 + b'\r\n\r\n',
             b'POST /act HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n']
    requests = []
    for i in range(count):
        if i % 3 == 0:
            requests.append(heads[(i // 3) % len(heads)])
        else:
            requests.append(rng.bytes(int(rng.integers(1, 2000))))
    return requests


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(('127.0.0.1', port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass                             # the server may close first: fine
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b''.join(chunks)


@pytest.fixture
def no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('the server unpickled something')
    for name in ('loads', 'load'):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, 'Unpickler', refuse)
    monkeypatch.setattr(np, 'load', refuse)


def test_fuzzed_requests_are_refused_and_the_server_keeps_serving(model, no_pickle):
    """1,055 malformed requests (openpi messages, /act bodies, raw HTTP) on a 1 MiB limit:
    each gets an error reply (or its connection closed), none reaches the model, and valid
    requests before and after get the same chunk."""
    requests = pytest.importorskip('requests')
    from websockets.sync.client import connect
    started = time.monotonic()
    rng = np.random.default_rng(2026)
    service = PolicyService(model, num_steps=1, default_prompt=PROMPT)
    calls = {'n': 0}
    predict = model.predict

    def counted(*args, **kwargs):
        calls['n'] += 1
        return predict(*args, **kwargs)

    images, state = frames(9), proprio(9)
    valid = {'state': state, 'images': images, 'seed': 9}
    with PolicyServer(service, ServerConfig(port=0, max_message_bytes=2**20,
                                            head_timeout=5.0)) as running:
        with PolicyClient(running.url) as client:
            before = client.infer(valid, 30)['actions']
        service.model = types.SimpleNamespace(predict=counted, preset=model.preset)
        rejected = 0
        with connect(running.url, max_size=2**22, open_timeout=10) as ws:
            ws.recv(timeout=10)                                   # metadata
            for message in fuzz_openpi_messages(rng, 450):
                ws.send(message)
                reply = ws.recv(timeout=30)
                assert isinstance(reply, str) and reply.startswith('request error: '), reply
                rejected += 1
            ws.send('{"state": []}')                              # a text frame
            assert ws.recv(timeout=10).startswith('request error: send msgpack')
            rejected += 1
        for size in (2**20 + 1, 3 * 2**20):                      # over the message limit
            with connect(running.url, max_size=2**22, open_timeout=10) as ws:
                ws.recv(timeout=10)
                ws.send(rng.bytes(size))
                with pytest.raises(Exception, match='1009'):
                    ws.recv(timeout=10)
                rejected += 1
        session = requests.Session()
        for body in fuzz_act_bodies(rng, 450):
            reply = session.post(f'{running.http_url}/act', data=body, timeout=30)
            assert reply.status_code == 400 and 'error' in reply.json(), reply.text[:200]
            rejected += 1
        for size in (2**20 + 1, 2 * 2**20):                      # over the body limit
            reply = session.post(f'{running.http_url}/act', data=rng.bytes(size), timeout=30)
            assert reply.status_code == 413
            rejected += 1
        for data in fuzz_raw_requests(rng, 150):
            answer = raw_exchange(running.port, data)
            assert not answer.startswith((b'HTTP/1.1 2', b'HTTP/1.1 101')), answer[:100]
            rejected += 1
        assert rejected >= 1000
        assert calls['n'] == 0, 'a malformed request reached the model'
        service.model = model
        with PolicyClient(running.url) as client:
            after = client.infer(valid, 30)['actions']
        reply = requests.post(f'{running.http_url}/act', timeout=30,
                              data=codec.dumps_json(act_body(images, state, seed=9)))
        assert reply.status_code == 200
        stats = dict(running.stats)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(
        np.stack([codec.to_array(codec.loads_json(json.dumps(a), 2**20))
                  for a in reply.json()['actions']]), before)
    assert stats['inference_errors'] == 0 and stats['request_errors'] >= 900, stats
    assert time.monotonic() - started < 300


def test_busy_server_says_so_instead_of_queueing_without_bound():
    running = stub_server(delay=2.0, max_pending=1)
    try:
        errors, replies = [], []

        def one(seed):
            with PolicyClient(running.url) as client:
                try:
                    replies.append(client.infer({'state': np.zeros(14), 'images': frames(0),
                                                 'seed': seed}, 10))
                except ServerError as exc:
                    errors.append(str(exc))
        threads = [threading.Thread(target=one, args=(s,)) for s in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert replies and errors and all(e.startswith('busy error') for e in errors)
        assert len(replies) + len(errors) == 3
    finally:
        running.stop()
