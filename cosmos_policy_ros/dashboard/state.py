"""What the browser dashboard shows, built from ROS messages by topic, ROS-free.

`DashboardState.feed(topic, msg, t_ns)` takes a message object with the ROS field names: an
rclpy message (live, cosmos_policy_ros.ros.dashboard) or a message decoded from a bag by
mcap_ros2 (replay, dashboard/replay.py), so both modes go through this one code path.
`snapshot(until_s)` is the JSON the page draws: the robot (FK of the followers' joint states),
the chunk preview, value over time, chunk boundaries and step sizes, latency per stage,
diagnostics and controller state, everything at or before `until_s` (replay's time slider).
Camera frames (real and predicted) are kept as small JPEGs in `frames`, looked up by time.
"""
import bisect
import json
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.params import pick
from cosmos_policy_ros.robot.description import EE_LINK, arm_joint_names
from cosmos_policy_ros.robot.kinematics import Kinematics, ee_paths
from cosmos_policy_ros.schemas.controller import CONTROLLER

# Links drawn as the arm's polyline, base to end effector.
ARM_DRAWN_LINKS = ('base_link', 'shoulder_link', 'upper_arm_link', 'upper_forearm_link',
                   'lower_forearm_link', 'wrist_link', 'gripper_link', EE_LINK)
FRAME_WIDTH = 320                 # stored JPEG width [px] (the page shows them small)
LATENCY_TOPICS = (names.POLICY_LATENCY_TOPIC, names.PLANNER_LATENCY_TOPIC)
CHUNK_TOPICS = (names.ACTION_CHUNK_TOPIC, names.PLANNED_CHUNK_TOPIC)
_DIAGNOSTIC_LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
# The step plot's reference line: the controller's default per-tick limit (a graph may set
# another; the page labels it as the default).
DEFAULT_MAX_STEP_RAD = pick(CONTROLLER, 'max_step_rad')[0].default


def frame_key(topic: str) -> str | None:
    """'/cam_high/camera/color/image_rect_raw' -> 'cam_high'; future -> 'cam_high_predicted'."""
    for camera in names.CAMERAS:
        if topic == names.camera_topic(camera):
            return camera
        if topic == names.future_image_topic(camera):
            return f'{camera}_predicted'
    return None


def image_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8 or mono8) -> (H, W, 3) uint8."""
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}.get(msg.encoding)
    if channels is None:
        raise ValueError(f'image encoding {msg.encoding!r} is not shown (rgb8, bgr8, mono8)')
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    rows = data.reshape(msg.height, msg.step)[:, :msg.width * channels]
    pixels = rows.reshape(msg.height, msg.width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[..., ::-1] if msg.encoding == 'bgr8' else pixels


def encode_jpeg(rgb: np.ndarray) -> bytes:
    import cv2  # the [data] extra
    height, width = rgb.shape[:2]
    if width > FRAME_WIDTH:
        rgb = cv2.resize(rgb, (FRAME_WIDTH, round(height * FRAME_WIDTH / width)),
                         interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError('JPEG encoding failed')
    return encoded.tobytes()


class Series:
    """(t [s], value) pairs in time order, the oldest dropped past `maxlen` (live mode)."""

    def __init__(self, maxlen: int | None):
        self.times: deque = deque(maxlen=maxlen)
        self.values: deque = deque(maxlen=maxlen)

    def add(self, t: float, value) -> None:
        if self.times and t < self.times[-1]:     # keep order: bags interleave topics
            index = bisect.bisect_right(list(self.times), t)
            self.times.insert(index, t)
            self.values.insert(index, value)
            return
        self.times.append(t)
        self.values.append(value)

    def upto(self, t: float | None) -> list:
        end = len(self.times) if t is None else bisect.bisect_right(self.times, t)
        return [(self.times[i], self.values[i]) for i in range(end)]

    def latest(self, t: float | None = None):
        end = len(self.times) if t is None else bisect.bisect_right(self.times, t)
        return (self.times[end - 1], self.values[end - 1]) if end else None


@dataclass(frozen=True)
class ChunkInfo:
    source: str
    max_step: float          # largest arm-joint change between consecutive actions [rad]
    boundary_jump: float     # |first action - arm joints when the chunk arrived|, max [rad]
    preview: dict            # arm -> (50, 3) end-effector path


class DashboardState:
    def __init__(self, kinematics: Kinematics, history: int | None = 20000,
                 frame_history: int | None = 1, min_frame_interval: float = 0.1):
        self.kinematics = kinematics
        self.lock = threading.Lock()
        self.start: float | None = None
        self.end = 0.0
        self.joints = {arm: Series(history) for arm in names.FOLLOWERS}
        self.value = Series(history)
        self.chunks = Series(history)
        self.latency = Series(history)
        self.diagnostics: dict = {}            # name -> Series of (level, message)
        self.controller = Series(history)
        self.info: dict = {}
        self.frames = {}                       # key -> Series of JPEG bytes
        self.frame_history = frame_history
        self.min_frame_interval = min_frame_interval
        self.skipped: dict = {}                # topic -> reason (unreadable messages)

    # -- input ------------------------------------------------------------------------------
    def feed(self, topic: str, msg, t_ns: int) -> None:
        """One message at time t_ns (receive time live, log time in a bag)."""
        with self.lock:
            if self.start is None:
                self.start = t_ns * 1e-9
            t = t_ns * 1e-9 - self.start
            self.end = max(self.end, t)
            try:
                self._feed(topic, msg, t)
            except (ValueError, KeyError, TypeError) as exc:
                self.skipped[topic] = f'{type(exc).__name__}: {exc}'

    def _feed(self, topic: str, msg, t: float) -> None:
        key = frame_key(topic)
        if key is not None:
            series = self.frames.setdefault(key, Series(self.frame_history))
            last = series.latest()
            if last is None or t - last[0] >= self.min_frame_interval or t < last[0]:
                series.add(t, encode_jpeg(image_rgb(msg)))
        elif topic in (names.joint_states_topic(arm) for arm in names.FOLLOWERS):
            arm = topic.strip('/').split('/')[0]
            values = dict(zip(msg.name, msg.position))
            self.joints[arm].add(t, np.array([values[n] for n in names.ARM_JOINTS]))
        elif topic in CHUNK_TOPICS:
            self.chunks.add(t, self._chunk(topic, msg, t))
        elif topic == names.VALUE_TOPIC:
            self.value.add(t, float(msg.data))
        elif topic in LATENCY_TOPICS:
            self.latency.add(t, latency_stages(json.loads(msg.data)))
        elif topic == names.CONTROLLER_STATUS_TOPIC:
            self.controller.add(t, json.loads(msg.data))
        elif topic == names.POLICY_INFO_TOPIC:
            self.info = json.loads(msg.data)
        elif topic == names.DIAGNOSTICS_TOPIC:
            for status in msg.status:
                level = status.level if isinstance(status.level, int) else ord(status.level)
                self.diagnostics.setdefault(status.name, Series(200)).add(
                    t, (_DIAGNOSTIC_LEVELS.get(level, str(level)), status.message))

    def _chunk(self, topic: str, msg, t: float) -> ChunkInfo:
        index = {name: i for i, name in enumerate(msg.joint_names)}
        missing = [n for n in names.VECTOR_NAMES if n not in index]
        if missing:
            raise ValueError(f'chunk without joints {missing}')
        actions = np.array([[p.positions[index[n]] for n in names.VECTOR_NAMES]
                            for p in msg.points], dtype=float)
        arm_columns = [i for i, n in enumerate(names.VECTOR_NAMES) if not n.endswith('gripper')]
        arm = actions[:, arm_columns]
        steps = np.abs(np.diff(arm, axis=0))
        current = [self.joints[a].latest(t) for a in names.FOLLOWERS]
        jump = (float(np.max(np.abs(arm[0] - np.concatenate([c[1] for c in current]))))
                if all(c is not None for c in current) else float('nan'))
        return ChunkInfo(source=topic, max_step=float(steps.max()) if steps.size else 0.0,
                         boundary_jump=jump, preview=ee_paths(self.kinematics, actions))

    # -- output -----------------------------------------------------------------------------
    def robot(self, t: float | None) -> dict:
        """{arm: [[x, y, z] per ARM_DRAWN_LINKS]} at the newest joint state at or before t."""
        out = {}
        for arm in names.FOLLOWERS:
            latest = self.joints[arm].latest(t)
            q = latest[1] if latest is not None else np.zeros(len(names.ARM_JOINTS))
            joint_names = arm_joint_names(arm)[:len(names.ARM_JOINTS)]
            poses = self.kinematics.link_poses({n: q[i:i + 1] for i, n in enumerate(joint_names)})
            out[arm] = [np.round(poses[f'{arm}/{link}'][0, :3, 3], 4).tolist()
                        for link in ARM_DRAWN_LINKS]
        return out

    def snapshot(self, until: float | None = None) -> dict:
        with self.lock:
            t = self.end if until is None else float(until)
            chunks = self.chunks.upto(t)
            latest_chunk = chunks[-1][1] if chunks else None
            controller = self.controller.latest(t)
            return {
                'time': round(t, 3), 'end': round(self.end, 3),
                'default_max_step_rad': DEFAULT_MAX_STEP_RAD,
                'robot': self.robot(t),
                'robot_known': {arm: self.joints[arm].latest(t) is not None
                                for arm in names.FOLLOWERS},
                'preview': ({arm: np.round(p, 4).tolist()
                             for arm, p in latest_chunk.preview.items()}
                            if latest_chunk else None),
                'value': [[round(s, 3), v] for s, v in self.value.upto(t)],
                'chunks': [{'t': round(s, 3), 'source': c.source,
                            'max_step': round(c.max_step, 4),
                            'boundary_jump': (None if np.isnan(c.boundary_jump)
                                              else round(c.boundary_jump, 4))}
                           for s, c in chunks],
                'latency': [[round(s, 3), stages] for s, stages in self.latency.upto(t)],
                'diagnostics': [{'name': name, 'level': entry[1][0], 'message': entry[1][1]}
                                for name, series in sorted(self.diagnostics.items())
                                if (entry := series.latest(t)) is not None],
                'controller': controller[1] if controller else None,
                'info': self.info,
                'frames': {key: round(entry[0], 3) for key, series in self.frames.items()
                           if (entry := series.latest(t)) is not None},
                'skipped': dict(self.skipped),
            }

    def frame(self, key: str, until: float | None = None) -> bytes | None:
        with self.lock:
            series = self.frames.get(key)
            entry = series.latest(until) if series is not None else None
            return entry[1] if entry else None


def latency_stages(report: dict) -> dict:
    """A node's latency JSON -> {stage: seconds}: the flat *_s fields and model_stages_s."""
    stages = {k[:-2]: float(v) for k, v in report.items()
              if k.endswith('_s') and isinstance(v, (int, float))
              and k not in ('inference_total_s', 'obs_age_at_publish_s', 'camera_to_publish_s')}
    stages.update({f'model/{k}': float(v)
                   for k, v in (report.get('model_stages_s') or {}).items()})
    if 'inference_total_s' in report:
        stages['total'] = float(report['inference_total_s'])
    return stages
