"""Shared test setup: every ROS process of the suite stays on loopback, in its own domain."""
import os
import sys

import pytest

from cosmos_policy_ros.rosenv import apply_loopback_env

# Before anything imports rclpy: this process and every node process it starts
# (cosmos_policy_ros.procs copies os.environ) use loopback discovery and one domain id per run.
DOMAIN_ID = apply_loopback_env()
os.environ.setdefault('MUJOCO_GL', 'egl')


@pytest.fixture
def graph_client():
    """A GraphClient node spinning in a thread; closed after the test."""
    from cosmos_policy_ros.ros.client import GraphClient
    client = GraphClient(name='test_client')
    yield client
    client.close()


@pytest.fixture
def log_dir(tmp_path):
    path = tmp_path / 'logs'
    path.mkdir()
    return path


@pytest.fixture(scope='module')
def one_torch_thread():
    """Torch on one thread for a module: its CPU tensors are small, and OpenMP barriers stall
    badly when the two CI cores are shared with node processes."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def fast_thread_switching():
    """Emulator threads answer the sdk promptly only with a short GIL switch interval."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def vx300s_emulator(fast_thread_switching):
    """One emulated follower bus (aloha_vx300s motors) on a pty."""
    from cosmos_policy_ros.hardware.dynamixel.emulator import DynamixelEmulator
    with DynamixelEmulator.for_arm('aloha_vx300s') as emulator:
        yield emulator


@pytest.fixture
def arm_emulators(tmp_path, fast_thread_switching):
    """Four emulated buses (leaders aloha_wx250s, followers aloha_vx300s) behind udev-like links
    <tmp>/ttyDXL_<arm>, keyed by arm name."""
    from cosmos_policy_ros.hardware.dynamixel.emulator import DynamixelEmulator
    from cosmos_policy_ros.names import ARMS, LEADERS
    emulators = {arm: DynamixelEmulator.for_arm(
        'aloha_wx250s' if arm in LEADERS else 'aloha_vx300s',
        link_path=str(tmp_path / f'ttyDXL_{arm}')).start() for arm in ARMS}
    yield emulators
    for emulator in emulators.values():
        emulator.stop()
