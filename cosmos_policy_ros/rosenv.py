"""Loopback-only ROS 2 environment: the one place it is set.

Every ROS process that the CLI, tests, benchmarks and CI start gets its environment from
`loopback_env()`: discovery limited to this host and a per-run domain id, so a test run never
talks to (or hears) another machine or another run.
"""
import os
import random

from cosmos_policy_ros.paths import share_path

_DOMAIN_ENV = 'ROS_DOMAIN_ID'


def pick_domain_id() -> int:
    """A domain id for one run. 1..100 keeps DDS port numbers in the safe Linux range."""
    return random.SystemRandom().randint(1, 100)


def loopback_env(domain_id: int | None = None, base: dict | None = None) -> dict:
    """Environment for a ROS process confined to loopback.

    Iron and later read ROS_AUTOMATIC_DISCOVERY_RANGE; Humble only knows ROS_LOCALHOST_ONLY,
    which newer distros deprecate (and warn about), so it is set for Humble alone.
    """
    env = dict(os.environ if base is None else base)
    if domain_id is None:
        domain_id = int(env.get(_DOMAIN_ENV) or pick_domain_id())
    env[_DOMAIN_ENV] = str(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    if env.get('ROS_DISTRO', '').lower() == 'humble':
        env['ROS_LOCALHOST_ONLY'] = '1'
    else:
        env.pop('ROS_LOCALHOST_ONLY', None)
    env.pop('ROS_STATIC_PEERS', None)
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    # Transports: 16 MB shared memory so ~0.9 MB camera frames arrive whole, UDP on 127.0.0.1 only.
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(share_path('config', 'fastdds_loopback.xml'))
    env.setdefault('MUJOCO_GL', 'egl')
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def apply_loopback_env(domain_id: int | None = None) -> int:
    """Set the loopback variables in this process (before rclpy.init). Returns the domain id."""
    env = loopback_env(domain_id)
    for key in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY',
                'RMW_IMPLEMENTATION', 'MUJOCO_GL', 'PYTHONUNBUFFERED', 'ROS_STATIC_PEERS',
                'FASTDDS_DEFAULT_PROFILES_FILE'):
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    return int(env['ROS_DOMAIN_ID'])
