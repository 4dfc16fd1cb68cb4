"""`cosmos-policy-ros dashboard` live, in its own process, on a running sim_robot node (real
MuJoCo, its joint states, cameras, /clock and diagnostics) plus a chunk, value and latency
published as the policy node does: the served state holds all of them."""
import json
import subprocess
import sys
import time
import urllib.request

import numpy as np
from std_msgs.msg import Float32, String

from cosmos_policy_ros import names
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.ros.trajectory import to_msg
from cosmos_policy_ros.sim.aloha_sim import START_ARM_POSE


def _read_url(dashboard: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = dashboard.stdout.readline()
        if line.startswith('dashboard (live): '):
            return line.split(': ', 1)[1].strip()
        if not line and dashboard.poll() is not None:
            break
    raise AssertionError(f'dashboard did not start: {dashboard.stdout.read()[-2000:]}')


def test_live_dashboard_shows_the_running_graph(graph_client, log_dir):
    sim = NodeSpec('sim_robot', 'sim_robot', parameters={
        'use_sim_time': True, 'camera_rate': 2.0, 'realtime_factor_cap': 1.0,
        'diagnostics_period': 0.5})
    dashboard = subprocess.Popen(
        [sys.executable, '-m', 'cosmos_policy_ros.cli', 'dashboard', '--port', '0',
         '--use-sim-time', '--seconds', '60'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    chunk_pub = graph_client.publisher(names.ACTION_CHUNK_TOPIC, type(to_msg(np.zeros((2, 14)),
                                                                             0)))
    value_pub = graph_client.publisher(names.VALUE_TOPIC, Float32)
    latency_pub = graph_client.publisher(names.POLICY_LATENCY_TOPIC, String)
    actions = np.tile(START_ARM_POSE + (0.5,) + START_ARM_POSE + (0.5,), (50, 1))
    actions[:, 0] += np.linspace(0.0, 0.4, 50)
    try:
        url = _read_url(dashboard, timeout=30)
        assert url.startswith('http://127.0.0.1:')
        with GraphProcesses([sim], log_dir) as processes:
            state = {}
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                chunk_pub.publish(to_msg(actions, 0))
                value_pub.publish(Float32(data=0.75))
                latency_pub.publish(String(data=json.dumps({'model_s': 0.3})))
                state = json.load(urllib.request.urlopen(url + 'api/state', timeout=5))
                # Each topic is discovered on its own: wait until every one has arrived.
                if (all(state['robot_known'].values()) and state['chunks']
                        and set(names.CAMERAS) <= set(state['frames'])
                        and state['diagnostics'] and state['value'] and state['latency']):
                    break
                time.sleep(0.5)
            processes.check_alive()
        assert dashboard.poll() is None
        assert all(state['robot_known'].values()), state['robot_known']
        assert set(names.CAMERAS) <= set(state['frames'])
        assert state['value'][-1][1] == 0.75 and state['latency'][-1][1]['model'] == 0.3
        assert len(state['preview']['follower_left']) == 50
        assert state['chunks'][-1]['boundary_jump'] < 0.1   # the sim starts at START_ARM_POSE
        assert any(d['name'].startswith('sim_robot') for d in state['diagnostics']), \
            state['diagnostics']
        jpeg = urllib.request.urlopen(url + 'api/frame/cam_high', timeout=5).read()
        assert jpeg[:2] == b'\xff\xd8'
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=10)
