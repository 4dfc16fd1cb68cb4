"""Loopback-only ROS 2 environment and the Fast DDS profile: the one place they are set.

Every ROS process that the CLI, tests, benchmarks and CI start gets its environment from
`loopback_env()`: discovery limited to this host and a per-run domain id, so a test run never
talks to (or hears) another machine or another run. A node started any other way (ros2 launch)
gets its Fast DDS profile from `use_robot_profile()` (called by cosmos_policy_ros.ros.main).
Fast DDS 2.x (Humble, Jazzy) and 3 (Kilted) read the profile from differently named variables:
`profile_variables()` tells which one this environment's Fast DDS reads.
"""
import os
import random
import sys
from pathlib import Path

from cosmos_policy_ros.paths import share_path

_DOMAIN_ENV = 'ROS_DOMAIN_ID'
# The variable naming the Fast DDS XML profile file: Fast DDS 2.x (Humble 2.6, Jazzy 2.14) reads
# only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3 (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE
# and warns in every process that the 2.x name, if set, is deprecated.
FAST_DDS_2_VAR = 'FASTRTPS_DEFAULT_PROFILES_FILE'
FAST_DDS_3_VAR = 'FASTDDS_DEFAULT_PROFILES_FILE'
PROFILE_ENV_VARS = (FAST_DDS_3_VAR, FAST_DDS_2_VAR)
_FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')
_FAST_DDS_3_DISTROS = ('kilted', 'lyrical', 'rolling')


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
    set_profile(env, share_path('config', 'fastdds_loopback.xml'))
    env.setdefault('MUJOCO_GL', 'egl')
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def profile_variables(env, prefixes=None) -> tuple:
    """The profile variable(s) the Fast DDS of this environment reads.

    From ROS_DISTRO when a system ROS 2 is sourced; else from the ROS prefixes (`prefixes`,
    default this venv, where the PyPI wheels install, and AMENT_PREFIX_PATH): Fast DDS 3 installs
    share/fastdds, 2.x share/fastrtps. Both variables when that cannot tell (no ROS found, or
    both versions).
    """
    distro = env.get('ROS_DISTRO', '').lower()
    if distro in _FAST_DDS_2_DISTROS:
        return (FAST_DDS_2_VAR,)
    if distro in _FAST_DDS_3_DISTROS:
        return (FAST_DDS_3_VAR,)
    prefixes = [*([sys.prefix] if prefixes is None else prefixes),
                *env.get('AMENT_PREFIX_PATH', '').split(os.pathsep)]
    folders = ((FAST_DDS_3_VAR, 'fastdds'), (FAST_DDS_2_VAR, 'fastrtps'))
    found = tuple(var for var, folder in folders
                  if any(prefix and Path(prefix, 'share', folder).is_dir() for prefix in prefixes))
    return found if len(found) == 1 else PROFILE_ENV_VARS


def set_profile(env, path, prefixes=None) -> None:
    """Point this environment's Fast DDS at an XML profile file (`env` is changed in place);
    the other version's variable is removed, so no stale profile is left behind."""
    wanted = profile_variables(env, prefixes)
    for key in PROFILE_ENV_VARS:
        if key in wanted:
            env[key] = str(path)
        else:
            env.pop(key, None)


def chosen_profile(env) -> str | None:
    """The profile file the user already chose through either variable, else None."""
    return next((env[key] for key in PROFILE_ENV_VARS if env.get(key)), None)


def use_robot_profile(env, prefixes=None) -> None:
    """The Fast DDS profile of a node started any other way (`ros2 launch`, `ros2 run`, Docker),
    set in `env` (os.environ) before rclpy.init: config/fastdds_robot.xml (16 MB shared memory
    for camera frames), unless the user chose a profile through either variable; that choice
    then goes to the variable this Fast DDS reads (a Humble user's FASTRTPS_... reaches Fast DDS
    3 too). Nothing changes for another RMW."""
    if env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return
    set_profile(env, chosen_profile(env) or share_path('config', 'fastdds_robot.xml'), prefixes)


def apply_loopback_env(domain_id: int | None = None) -> int:
    """Set the loopback variables in this process (before rclpy.init). Returns the domain id."""
    env = loopback_env(domain_id)
    for key in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY',
                'RMW_IMPLEMENTATION', 'MUJOCO_GL', 'PYTHONUNBUFFERED', 'ROS_STATIC_PEERS',
                *PROFILE_ENV_VARS):
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    return int(env['ROS_DOMAIN_ID'])
