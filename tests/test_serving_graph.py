"""backend:=remote through real processes: sim_robot -> policy (remote) -> controller, with a
`cosmos-policy-ros serve` process as the GPU box (tiny model at 64 px, CPU, 127.0.0.1).

The server is killed mid-run: the policy publishes nothing, its /diagnostics says the server
is unreachable, the controller finishes its chunk and its watchdog holds the arms (constant
commands, no chunk accepted). The server is started again on the same port: the policy node
reconnects by itself and the controller runs fresh chunks (observed after the outage) again.
"""
import dataclasses
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from cosmos_policy_ros import names
from cosmos_policy_ros.graphs import build_graph
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.ros.client import GraphClient

pytestmark = pytest.mark.slow
CHUNK_TIMEOUT = 4.0             # controller: hold when no chunk for this long [s, sim time]


def tiny_64_preset(directory) -> str:
    """The tiny preset at 64 px (as tests/test_policy_graph.py): same code paths, CPU-cheap."""
    from cosmos_policy_ros.paths import share_path
    text = share_path('models', 'tiny.yaml').read_text()
    path = directory / 'tiny_64.yaml'
    path.write_text(text.replace('image_size: 224', 'image_size: 64')
                    .replace('name: tiny', 'name: tiny_64'))
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`cosmos-policy-ros serve` in its own process group; stdout collected by a thread."""

    def __init__(self, preset: str, port: int, log_path):
        self.lines = queue.Queue()
        self.log = open(log_path, 'a')
        self.popen = subprocess.Popen(
            [sys.executable, '-m', 'cosmos_policy_ros.cli', 'serve', '--preset', preset,
             '--host', '127.0.0.1', '--port', str(port), '--num-steps', '2',
             '--torch-threads', '1', '--task', 'transfer_cube'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.popen.stdout:
            self.log.write(line)
            self.log.flush()
            self.lines.put(line)

    def wait_serving(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                assert self.popen.poll() is None, f'server exited: {"".join(seen)}'
                continue
            seen.append(line)
            if line.startswith('serving openpi websocket on'):
                return line
        raise TimeoutError(f'server not serving after {timeout} s: {"".join(seen)}')

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)     # a crash: no goodbye to clients
        self.popen.wait(10)


def status_of(record) -> dict:
    msg = record.latest()
    return json.loads(msg.data) if msg is not None else {}


def diagnostics_named(record, name: str) -> dict:
    for array in reversed(record.messages()):
        for status in array.status:
            if status.name == name:
                return {'level': status.level, 'message': status.message,
                        **{kv.key: kv.value for kv in status.values}}
    return {}


def test_remote_policy_holds_through_a_server_outage_and_reconnects(tmp_path):
    preset = tiny_64_preset(tmp_path)
    port = free_port()
    servers = [ServerProcess(preset, port, tmp_path / 'server.log')]
    try:
        assert f'ws://127.0.0.1:{port}' in servers[0].wait_serving(240)
        specs = build_graph('aloha_policy', {
            'use_sim': 'true', 'preset': preset, 'num_steps': '2', 'camera_rate': '10.0',
            'freshness': '1.5', 'max_chunk_age': '6.0', 'backend': 'remote',
            'max_jump_rad': '0',                  # random weights jump by design
            'server': f'ws://127.0.0.1:{port}'})
        specs = [dataclasses.replace(spec, parameters={**spec.parameters,
                                                       'chunk_timeout': CHUNK_TIMEOUT})
                 if spec.executable == 'controller' else spec for spec in specs]
        with GraphProcesses(specs, tmp_path / 'logs') as procs:
            client = GraphClient('test_remote_policy', use_sim_time=True)
            try:
                run_outage_scenario(procs, client, servers, preset, port, tmp_path)
            finally:
                client.close()
    finally:
        for server in servers:
            server.kill()


def run_outage_scenario(procs, client, servers, preset, port, tmp_path) -> None:
    status = client.subscribe(names.CONTROLLER_STATUS_TOPIC, String, maxlen=100000)
    diagnostics = client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray, maxlen=2000)
    chunks = client.subscribe(names.ACTION_CHUNK_TOPIC, JointTrajectory)
    commands = client.subscribe(names.joint_command_topic('follower_left'), JointState,
                                maxlen=100000)
    info = client.subscribe(names.POLICY_INFO_TOPIC, String, maxlen=10, latched=True)

    def counts() -> dict:
        procs.check_alive()
        return status_of(status).get('counts', {})

    def remote() -> dict:
        return diagnostics_named(diagnostics, 'policy: remote server')

    def tails() -> dict:
        return {p.spec.name: p.log_tail(8) for p in procs.processes}

    # 1. Running on the remote policy.
    assert client.wait_for(lambda: counts().get('chunks_accepted', 0) >= 2
                           and remote().get('connected') == 'True', timeout=300,
                           interval=0.5), (status_of(status), remote(), tails())
    server_info = json.loads(info.latest().data)
    assert server_info['backend'] == 'remote' and server_info['preset'] == 'tiny_64'
    assert server_info['untrained'] is True

    # 2. Outage: no chunk, the controller finishes its chunk and the watchdog holds.
    sim_at_kill = client.node.get_clock().now().nanoseconds * 1e-9
    servers[0].kill()
    assert client.wait_for(lambda: status_of(status).get('state') == 'watchdog'
                           and remote().get('level') == DiagnosticStatus.ERROR, timeout=240,
                           interval=0.5), (status_of(status), remote(), tails())
    held = counts()
    chunks_at_hold = chunks.count
    assert 'chunk' in status_of(status)['reason']
    assert int(remote()['failures']) >= 1 and remote()['connected'] == 'False'
    commands.clear()
    client.wait_for(lambda: False, timeout=15.0)          # the outage goes on
    during = counts()
    assert during['chunks_accepted'] == held['chunks_accepted'], (held, during)
    assert chunks.count == chunks_at_hold                 # the policy published nothing
    assert status_of(status)['state'] == 'watchdog'
    positions = np.array([m.position for m in commands.messages()])
    assert len(positions) >= 5 and np.all(positions == positions[0])   # holding still
    controller = diagnostics_named(diagnostics, 'controller: arm controller')
    assert controller['message'].startswith('watchdog')
    assert controller['level'] == DiagnosticStatus.WARN

    # 3. The server is back on the same port: reconnect, fresh chunks run again.
    servers.append(ServerProcess(preset, port, tmp_path / 'server.log'))
    servers[-1].wait_serving(240)
    assert client.wait_for(lambda: counts().get('chunks_accepted', 0)
                           >= held['chunks_accepted'] + 2 and remote().get('connected') == 'True',
                           timeout=300, interval=0.5), (status_of(status), remote(), tails())
    assert int(remote()['connects']) >= 2
    new = chunks.messages()[chunks_at_hold:]
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in new]
    assert stamps and min(stamps) > sim_at_kill           # observed after the outage
    after = counts()
    if after['chunks_rejected']:                          # only ever for being stale
        assert after['last_reject'].startswith('stale'), after['last_reject']
    assert after['watchdog_engagements'] >= 1
