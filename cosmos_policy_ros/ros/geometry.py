"""4x4 homogeneous matrices -> ROS pose parts (position, quaternion x y z w), numpy only."""
import numpy as np


def matrix_quaternion(rotation: np.ndarray) -> tuple:
    """3x3 rotation -> (x, y, z, w), w >= 0 (Shepperd's method: stable for every rotation)."""
    m = np.asarray(rotation, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        v = [0.0, 0.0, 0.0]
        v[i] = s / 4
        v[j] = (m[j, i] + m[i, j]) / s
        v[k] = (m[k, i] + m[i, k]) / s
        q = (*v, (m[k, j] - m[j, k]) / s)
    q = np.array(q) / np.linalg.norm(q)
    return tuple(float(c) for c in (q if q[3] >= 0 else -q))


def matrix_to_pose_parts(matrix: np.ndarray) -> tuple:
    """4x4 -> ((x, y, z), (qx, qy, qz, qw))."""
    return tuple(float(c) for c in matrix[:3, 3]), matrix_quaternion(matrix[:3, :3])
