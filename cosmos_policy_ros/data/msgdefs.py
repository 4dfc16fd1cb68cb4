"""Complete ROS 2 message definitions in rosbag2's `ros2msg` schema encoding (ROS-free).

rosbag2 and Foxglove store, per MCAP schema, the type's .msg text followed by every nested
type's .msg text, each after a line of 80 '=' and a `MSG: pkg/msg/Type` line
(rosbag2 docs/message_definition_encoding.md). The .msg files come from the installed message
packages' share directories (PyPI wheels or a system ROS), found without importing rclpy.
"""
import functools
import os
import re
import sys
from pathlib import Path

PRIMITIVES = frozenset((
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
    'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'))
DELIMITER = '=' * 80
_ARRAY_OR_BOUND = re.compile(r'(<=\d+)?(\[[^\]]*\])?$')


def share_roots() -> list:
    """Directories that may hold <pkg>/msg/<Type>.msg: AMENT_PREFIX_PATH entries, then the
    Python prefix (where the PyPI ROS wheels install share/)."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    return [Path(prefix) / 'share' for prefix in prefixes]


@functools.cache
def msg_text(typename: str) -> str:
    """'sensor_msgs/msg/Image' -> that .msg file's text."""
    package, kind, name = split_type(typename)
    for root in share_roots():
        path = root / package / kind / f'{name}.msg'
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError(
        f'message definition {typename!r} not found under {[str(r) for r in share_roots()]}; '
        f'install the {package} message package (pip: ros-{package.replace("_", "-")}) or '
        'source a ROS 2 setup.bash')


def split_type(typename: str) -> tuple:
    parts = typename.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f'message type {typename!r} must look like pkg/msg/Type')
    return tuple(parts)


def field_types(text: str, package: str) -> list:
    """Non-primitive field types of one .msg text, as pkg/msg/Type, in order of appearance."""
    found = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        token = line.split()[0]
        if '=' in token:      # constant written without spaces is still a primitive
            continue
        base = _ARRAY_OR_BOUND.sub('', token)
        if base in PRIMITIVES:
            continue
        if base == 'Header':
            base = 'std_msgs/Header'
        if '/' not in base:
            base = f'{package}/{base}'
        package_name, _, name = split_type(base)
        found.append(f'{package_name}/msg/{name}')
    return found


@functools.cache
def full_definition(typename: str) -> str:
    """The ros2msg schema text: the type's .msg, then each nested type once, depth first."""
    package, kind, name = split_type(typename)
    root = f'{package}/{kind}/{name}'
    parts = [msg_text(root).rstrip('\n')]
    seen = {root}
    pending = list(reversed(field_types(parts[0], package)))
    while pending:
        nested = pending.pop()
        if nested in seen:
            continue
        seen.add(nested)
        text = msg_text(nested).rstrip('\n')
        parts.append(f'{DELIMITER}\nMSG: {nested}\n{text}')
        pending.extend(reversed(field_types(text, split_type(nested)[0])))
    return '\n'.join(parts) + '\n'
