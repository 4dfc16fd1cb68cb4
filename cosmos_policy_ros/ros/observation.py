"""Observation assembly shared by the policy and planner nodes.

Subscribes to the three cameras (sensor-data QoS) and both follower joint_states, buffers the
last few messages of each, and builds an observation from the newest consistent set: the
anchor is the oldest of the cameras' newest stamps, every source contributes the message
closest to it, all must lie within `sync_slop` of it and the anchor must be at most
`freshness` old on the node clock. Callbacks only store messages; conversion to arrays happens
in the caller's worker thread (`assemble`), so executor callbacks never block.
"""
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import GripperConstants
from cosmos_policy_ros.control.units import proprio_from_positions
from cosmos_policy_ros.ros.image import to_rgb
from cosmos_policy_ros.ros.stamps import to_ns

SOURCES = names.CAMERAS + names.FOLLOWERS


@dataclass(frozen=True)
class RawObservation:
    """Messages chosen for one observation (not yet converted)."""
    stamp_ns: int                       # anchor: oldest newest-camera stamp
    stamps_ns: dict                     # source -> header stamp used
    images: dict                        # camera -> Image
    joint_states: dict                  # follower arm -> JointState
    newest_receive: float               # monotonic receive time of the newest camera used


@dataclass(frozen=True)
class Assembled:
    stamp_ns: int
    stamps_ns: dict
    images: dict                        # camera -> HxWx3 uint8
    proprio: np.ndarray                 # (14,) robot units
    newest_receive: float
    convert_s: float                    # ROS messages -> arrays


def proprio_from_joint_states(states: dict, gripper: GripperConstants) -> np.ndarray:
    """[left 6, left gripper, right 6, right gripper] from the followers' JointState messages
    (control.units.proprio_from_positions on their named positions)."""
    positions = {}
    for arm in names.FOLLOWERS:
        msg = states[arm]
        index = {name: i for i, name in enumerate(msg.name)}
        missing = [n for n in names.ARM_JOINTS + ('left_finger',) if n not in index]
        if missing:
            raise ValueError(f'{names.joint_states_topic(arm)}: joint_states lacks {missing}; '
                             f'publish {list(names.JOINT_STATE_NAMES)}')
        positions[arm] = [msg.position[index[n]] if n in index else 0.0
                          for n in names.JOINT_STATE_NAMES]
    return proprio_from_positions(positions, gripper)


class ObservationInputs:
    """Subscriptions + buffers on `node`; `latest(now_ns)` picks the newest consistent set."""

    def __init__(self, node, gripper: GripperConstants, freshness: float, sync_slop: float,
                 callback_group=None, camera_depth: int = 3, joint_depth: int = 100):
        self.gripper = gripper
        self.freshness_ns = int(freshness * 1e9)
        self.slop_ns = int(sync_slop * 1e9)
        self._lock = threading.Lock()
        self._buffers = {source: deque(maxlen=camera_depth if source in names.CAMERAS
                                       else joint_depth) for source in SOURCES}
        for camera in names.CAMERAS:
            node.create_subscription(Image, names.camera_topic(camera),
                                     lambda msg, s=camera: self._store(s, msg),
                                     qos_profile_sensor_data, callback_group=callback_group)
        for arm in names.FOLLOWERS:
            node.create_subscription(JointState, names.joint_states_topic(arm),
                                     lambda msg, s=arm: self._store(s, msg),
                                     QoSProfile(depth=20), callback_group=callback_group)

    def _store(self, source: str, msg) -> None:
        with self._lock:
            self._buffers[source].append((to_ns(msg.header.stamp), time.monotonic(), msg))

    def latest(self, now_ns: int, min_stamp_ns: int | None = None) -> tuple:
        """(RawObservation | None, reason): the newest consistent, fresh set of messages,
        not older than `min_stamp_ns` when given (lockstep: the controller's report)."""
        with self._lock:
            buffers = {source: list(buf) for source, buf in self._buffers.items()}
        empty = [source for source, buf in buffers.items() if not buf]
        if empty:
            return None, f'waiting for {empty}'
        anchor = min(buffers[camera][-1][0] for camera in names.CAMERAS)
        if min_stamp_ns is not None and anchor < min_stamp_ns:
            return None, 'waiting for cameras at or after the controller status'
        if now_ns - anchor > self.freshness_ns:
            return None, (f'newest complete camera set is {(now_ns - anchor) / 1e9:.2f} s old '
                          f'(freshness {self.freshness_ns / 1e9} s)')
        chosen = {source: min(buf, key=lambda item: abs(item[0] - anchor))
                  for source, buf in buffers.items()}
        apart = {source: abs(item[0] - anchor) for source, item in chosen.items()}
        late = {source: gap / 1e9 for source, gap in apart.items() if gap > self.slop_ns}
        if late:
            return None, f'sources out of sync with the cameras by {late} s'
        return RawObservation(
            stamp_ns=anchor, stamps_ns={s: item[0] for s, item in chosen.items()},
            images={c: chosen[c][2] for c in names.CAMERAS},
            joint_states={a: chosen[a][2] for a in names.FOLLOWERS},
            newest_receive=max(chosen[c][1] for c in names.CAMERAS)), ''

    def assemble(self, raw: RawObservation) -> Assembled:
        """Convert (call from a worker thread): images to arrays, joint states to proprio."""
        start = time.perf_counter()
        images = {camera: to_rgb(msg, (names.IMAGE_HEIGHT, names.IMAGE_WIDTH),
                                 source=names.camera_topic(camera))
                  for camera, msg in raw.images.items()}
        proprio = proprio_from_joint_states(raw.joint_states, self.gripper)
        return Assembled(raw.stamp_ns, raw.stamps_ns, images, proprio, raw.newest_receive,
                         time.perf_counter() - start)


class QueryLoop:
    """Decides when to infer and runs inference off the executor thread (policy + planner).

    A steady 50 Hz poll checks the controller status with control.trigger.QueryTrigger; when a
    query is due and a fresh observation exists, `infer(raw)` runs in a single worker thread
    (so subscriptions, status and the poll never block). `infer` returns the published chunk's
    stamp [ns] and node-clock latency [s] (or None when it published nothing).
    """

    def __init__(self, node, inputs: ObservationInputs, trigger, infer, callback_group=None,
                 lockstep: bool = False):
        from concurrent.futures import ThreadPoolExecutor

        from rclpy.clock import Clock, ClockType
        from std_msgs.msg import String

        from cosmos_policy_ros.control.trigger import ControllerStatus
        self.node, self.inputs, self.trigger, self.infer = node, inputs, trigger, infer
        self.lockstep = lockstep
        self._status_type = ControllerStatus
        self.status = None
        self.busy = False
        self.waiting_reason = ''
        self.failures = 0
        self.closing = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='inference')
        node.create_subscription(String, names.CONTROLLER_STATUS_TOPIC, self._on_status,
                                 QoSProfile(depth=5), callback_group=callback_group)
        node.create_timer(0.02, self._poll, callback_group=callback_group,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_status(self, msg) -> None:
        self.status = self._status_type.from_json(msg.data)

    def _poll(self) -> None:
        if self.busy:
            return
        now_ns = self.node.get_clock().now().nanoseconds
        if not self.trigger.should_query(self.status, now_ns * 1e-9):
            return
        minimum = round(self.status.stamp * 1e9) if self.lockstep else None
        raw, reason = self.inputs.latest(now_ns, minimum)
        if raw is None:
            if reason != self.waiting_reason:
                self.node.get_logger().info(f'not querying: {reason}')
                self.waiting_reason = reason
            return
        self.waiting_reason = ''
        self.busy = True
        self._pool.submit(self._run, raw)

    def _run(self, raw) -> None:
        try:
            result = self.infer(raw)
            if result is not None:
                stamp_ns, latency = result
                now = self.node.get_clock().now().nanoseconds * 1e-9
                self.trigger.published(stamp_ns * 1e-9, now, latency)
        except Exception as exc:  # noqa: BLE001 - reported, counted, never silent
            if self.closing:        # shutting down mid-inference: nothing left to publish to
                return
            self.failures += 1
            self.node.get_logger().error(f'inference failed: {type(exc).__name__}: {exc}',
                                         throttle_duration_sec=5.0)
        finally:
            self.busy = False

    def close(self) -> None:
        self.closing = True
        self._pool.shutdown(wait=True, cancel_futures=True)
