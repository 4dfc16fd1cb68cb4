"""A deployment episode bag for the dashboard tests: real MuJoCo joint states and camera frames
of the sim following two action chunks, with the policy's topics (chunks, value, latency,
predicted frames, controller status, diagnostics, info) as the graph publishes them, written by
the project's BagWriter with CDR from the rosbags typestore (an independent serialiser)."""
import json

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.data import synthetic
from cosmos_policy_ros.data.bag import BagWriter, TopicInfo
from cosmos_policy_ros.sim.aloha_sim import DT, START_ARM_POSE, AlohaSim

TYPES = synthetic.TYPESTORE.types
TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
FLOAT32 = 'std_msgs/msg/Float32'
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'
START_NS = 1_000_000_000_000         # the robot's first joint states; the loop starts DT later
CHUNK_TIMES = (0.0, 1.0)               # [s] when the two chunks arrive (+ DT in the bag)
VALUES = (0.35, 0.6)
SECONDS = 2.0
DIAGNOSTIC_NAME = 'controller: arm controller'


def chunk_actions(index: int) -> np.ndarray:
    """(50, 14): both arms swing their waist and lift, from the start pose."""
    ramp = np.linspace(0.0, 1.0, 50)[:, None]
    start = np.array(START_ARM_POSE + (0.5,) + START_ARM_POSE + (0.5,))
    delta = np.zeros(14)
    delta[[0, 1, 7, 8]] = (0.5, 0.3, -0.5, 0.3)
    return start + (index + ramp) * delta


def trajectory(actions: np.ndarray, ns: int) -> bytes:
    points = [TYPES['trajectory_msgs/msg/JointTrajectoryPoint'](
        positions=row.astype(np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
        effort=np.zeros(0), time_from_start=TYPES['builtin_interfaces/msg/Duration'](
            sec=0, nanosec=int(i * 40_000_000))) for i, row in enumerate(actions)]
    msg = TYPES[TRAJECTORY](header=synthetic._header(ns), joint_names=list(names.VECTOR_NAMES),
                            points=points)
    return synthetic.serialize(msg, TRAJECTORY)


def diagnostics(ns: int, level: int, message: str) -> bytes:
    status = TYPES['diagnostic_msgs/msg/DiagnosticStatus'](
        level=level, name=DIAGNOSTIC_NAME, message=message, hardware_id='sim',
        values=[TYPES['diagnostic_msgs/msg/KeyValue'](key='holds', value='0')])
    msg = TYPES[DIAGNOSTICS](header=synthetic._header(ns), status=[status])
    return synthetic.serialize(msg, DIAGNOSTICS)


def write_episode(bag_dir) -> dict:
    """Write the bag; returns what was written (for the assertions)."""
    topics = ([TopicInfo(names.joint_states_topic(a), synthetic.JOINT_STATE)
               for a in names.FOLLOWERS]
              + [TopicInfo(names.camera_topic(c), synthetic.IMAGE, 'sensor')
                 for c in names.CAMERAS]
              + [TopicInfo(names.future_image_topic(c), synthetic.IMAGE) for c in names.CAMERAS]
              + [TopicInfo(names.ACTION_CHUNK_TOPIC, TRAJECTORY),
                 TopicInfo(names.VALUE_TOPIC, FLOAT32),
                 TopicInfo(names.POLICY_LATENCY_TOPIC, synthetic.STRING),
                 TopicInfo(names.CONTROLLER_STATUS_TOPIC, synthetic.STRING),
                 TopicInfo(names.POLICY_INFO_TOPIC, synthetic.STRING, 'latched'),
                 TopicInfo(names.DIAGNOSTICS_TOPIC, DIAGNOSTICS)])
    # Quarter-size frames, 2 per second: software rendering costs ~0.2 s per 640x480 frame.
    sim = AlohaSim('transfer_cube', load_calibration('aloha_sim'), image_size=(240, 320))
    sim.reset(3)
    writer = BagWriter(bag_dir, topics, fsync=False)
    writer.write(names.POLICY_INFO_TOPIC, synthetic.string(json.dumps(
        {'preset': 'tiny', 'status': 'UNTRAINED (random weights)', 'untrained': True})),
        START_NS)
    for arm, side in zip(names.FOLLOWERS, names.SIDES):
        writer.write(names.joint_states_topic(arm), synthetic.joint_state(
            START_NS, names.JOINT_STATE_NAMES, sim.arm_state(side).position), START_NS)
    steps = round(SECONDS / DT)
    chunks = [chunk_actions(i) for i in range(len(CHUNK_TIMES))]
    for step in range(steps + 1):
        t = step * DT
        ns = START_NS + round((t + DT) * 1e9)
        index = max(i for i, start in enumerate(CHUNK_TIMES) if t >= start - 1e-9)
        if abs(t - CHUNK_TIMES[index]) < 1e-9:
            writer.write(names.ACTION_CHUNK_TOPIC, trajectory(chunks[index], ns), ns)
            writer.write(names.VALUE_TOPIC, synthetic.serialize(
                TYPES[FLOAT32](data=VALUES[index]), FLOAT32), ns)
            writer.write(names.POLICY_LATENCY_TOPIC, synthetic.string(json.dumps({
                'convert_s': 0.01, 'model_s': 0.4 + 0.1 * index, 'publish_s': 0.002,
                'inference_total_s': 0.42 + 0.1 * index,
                'model_stages_s': {'vae_encode': 0.1, 'denoise': 0.25}})), ns)
        action = chunks[index][min(49, round((t - CHUNK_TIMES[index]) / 0.04))]
        for side, offset in zip(names.SIDES, (0, 7)):
            sim.command(side, names.ARM_JOINTS, action[offset:offset + 6])
        sim.step()
        for arm, side in zip(names.FOLLOWERS, names.SIDES):
            state = sim.arm_state(side)
            writer.write(names.joint_states_topic(arm), synthetic.joint_state(
                ns, names.JOINT_STATE_NAMES, state.position), ns)
        if step % 25 == 0:                                  # 2 Hz frames and status
            for camera, rgb in sim.render().items():
                writer.write(names.camera_topic(camera), synthetic.image(ns, rgb), ns)
                predicted = (rgb * np.array([0.6, 0.8, 1.0])).astype(np.uint8)
                writer.write(names.future_image_topic(camera),
                             synthetic.image(ns, predicted), ns)
            writer.write(names.CONTROLLER_STATUS_TOPIC, synthetic.string(json.dumps(
                {'state': 'executing', 'remaining': 50 - step % 50})), ns)
        if step % 50 == 0:
            writer.write(names.DIAGNOSTICS_TOPIC,
                         diagnostics(ns, 0 if step < 100 else 1, f'tick {step}'), ns)
    sim.close()
    writer.close()
    return {'chunks': chunks, 'seconds': (steps + 1) * DT}
