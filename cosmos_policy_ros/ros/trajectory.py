"""Action chunk <-> trajectory_msgs/JointTrajectory (14 names, CHUNK_LENGTH points DT apart).

The header stamp is the observation time the chunk was predicted from; point i has
time_from_start = i * DT. Parsing never raises on content: a malformed message becomes a Chunk
whose check (control.chunks.check_chunk) raises ChunkError with the reason.
"""
import numpy as np
from builtin_interfaces.msg import Duration
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from cosmos_policy_ros.control.chunks import DT, Chunk
from cosmos_policy_ros.names import VECTOR_NAMES
from cosmos_policy_ros.ros.stamps import from_ns, to_ns


def to_msg(positions, stamp_ns: int, dt: float = DT, frame_id: str = '') -> JointTrajectory:
    positions = np.asarray(positions, dtype=np.float64)
    msg = JointTrajectory()
    msg.header.stamp = from_ns(stamp_ns)
    msg.header.frame_id = frame_id
    msg.joint_names = list(VECTOR_NAMES)
    for i, row in enumerate(positions):
        offset_ns = round(i * dt * 1e9)
        msg.points.append(JointTrajectoryPoint(
            positions=row.tolist(),
            time_from_start=Duration(sec=offset_ns // 1_000_000_000,
                                     nanosec=offset_ns % 1_000_000_000)))
    return msg


def from_msg(msg: JointTrajectory, source: str = '') -> Chunk:
    """A Chunk to validate; ragged rows become NaN so the check reports them."""
    names = tuple(msg.joint_names)
    rows = [list(point.positions) for point in msg.points]
    width = len(names)
    positions = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        if len(row) == width:
            positions[i] = row
    offsets = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    if len(offsets) >= 2:
        steps = np.diff(offsets)
        dt = float(steps.mean()) if np.allclose(steps, steps[0], atol=1e-4) else float('nan')
    else:
        dt = DT
    return Chunk(stamp=to_ns(msg.header.stamp) / 1e9, dt=dt, names=names,
                 positions=positions, source=source)
