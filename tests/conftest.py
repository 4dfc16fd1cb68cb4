"""Shared test setup: every ROS process of the suite stays on loopback, in its own domain."""
import os

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
