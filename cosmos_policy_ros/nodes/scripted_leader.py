"""scripted_leader: virtual leader arms playing the scripted expert (cosmos_policy_ros.sim.expert).

Subscribes names.EPISODE_TOPIC (std_msgs/String JSON from sim_robot, transient local). For each
episode it plans the expert's joint trajectory from the episode's object poses (in a worker
thread), then publishes /leader_left|right/joint_states (sensor_msgs/JointState,
names.JOINT_STATE_NAMES: arm joints, leader gripper motor angle = leader_joint_unnormalize of
the scripted opening with the calibration's preset, finger positions [m]) every 1/`rate` s of
node time (sim time with use_sim_time), following the trajectory from its start time and
holding the last pose after its end. The start time is the episode's sim_time, or the time the
plan became ready if later (logged), so the script is never entered mid-way. While a plan is
being computed the leaders publish the script's start pose (START_ARM_POSE, gripper closed);
nothing is published before the first episode arrives (teleop then sends nothing).
"""
import json
import threading

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.sim.aloha_sim import START_ARM_POSE
from cosmos_policy_ros.sim.expert import plan
from cosmos_policy_ros.sim.tasks import TASKS

PARAMS = (
    Param('task', 'transfer_cube', 'sim task the script is for', choices=tuple(TASKS),
          read_only=True),
    Param('calibration', 'aloha_sim', 'calibration/<name>.yaml or a path (gripper preset)',
          read_only=True),
    Param('rate', 50.0, 'leader joint_states rate [Hz of node time]', min=1.0, max=500.0,
          read_only=True),
    Param('leader_topics', [names.joint_states_topic(a) for a in names.LEADERS],
          'leader joint_states topics [left, right]', read_only=True),
)


class ScriptedLeader(Node):
    def __init__(self):
        super().__init__('scripted_leader')
        self.params = params.declare(self, PARAMS)
        p = self.params
        if len(p.leader_topics) != len(names.SIDES):
            raise ValueError(f"parameter 'leader_topics': needs [left, right] topics, got "
                             f'{p.leader_topics}')
        self.calibration = load_calibration(p.calibration)
        self._lock = threading.Lock()
        self._trajectory = None
        self._start_ns = 0
        self._episode = None
        qos = QoSProfile(depth=10)
        self._pubs = {side: self.create_publisher(JointState, topic, qos)
                      for side, topic in zip(names.SIDES, p.leader_topics)}
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(String, names.EPISODE_TOPIC, self._on_episode, latched,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0 / p.rate, self._tick,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f'scripted_leader: task {p.task}, waiting for episodes on '
                               f'{names.EPISODE_TOPIC}')

    def _on_episode(self, msg: String) -> None:
        try:
            episode = json.loads(msg.data)
            task, poses = episode['task'], episode['object_poses']
            start_ns = round(float(episode['sim_time']) * 1e9)
        except (ValueError, KeyError, TypeError) as exc:
            self.get_logger().error(f'{names.EPISODE_TOPIC}: unreadable episode ({exc!r}); '
                                    'expected JSON with task, object_poses, sim_time')
            return
        if task != self.params.task:
            self.get_logger().error(f'{names.EPISODE_TOPIC}: episode task {task!r} but this '
                                    f'leader scripts {self.params.task!r}; set the task '
                                    'parameter of both nodes to the same task')
            return
        with self._lock:
            self._trajectory = None         # stop following the previous episode
            self._episode = episode.get('episode')
        threading.Thread(target=self._plan, args=(episode, poses, start_ns), daemon=True,
                         name='expert_plan').start()

    def _plan(self, episode: dict, poses: dict, start_ns: int) -> None:
        try:
            trajectory = plan(self.params.task, {k: np.asarray(v) for k, v in poses.items()},
                              self.calibration)
        except Exception as exc:  # noqa: BLE001 - a bad episode must not end the node
            self.get_logger().error(f'episode {episode.get("episode")}: planning failed: '
                                    f'{exc!r}')
            return
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            if self._episode != episode.get('episode'):
                return                      # a newer episode arrived meanwhile
            if now_ns - start_ns > 100_000_000:      # > 0.1 s of the script would be lost
                self.get_logger().warn(f'episode {self._episode}: plan ready '
                                       f'{(now_ns - start_ns) / 1e9:.2f} s after the reset; '
                                       'starting the script now')
            self._trajectory, self._start_ns = trajectory, max(start_ns, now_ns)
        self.get_logger().info(f'episode {episode.get("episode")} (seed '
                               f'{episode.get("seed")}): following a '
                               f'{trajectory.duration:.1f} s script')

    def _tick(self) -> None:
        now = self.get_clock().now()
        with self._lock:
            trajectory, start_ns, episode = self._trajectory, self._start_ns, self._episode
        if episode is None:
            return
        step = trajectory.step_at((now.nanoseconds - start_ns) / 1e9) if trajectory else None
        stamp = now.to_msg()
        gripper = self.calibration.gripper
        for side, publisher in self._pubs.items():
            if trajectory is None:          # planning: hold the script's start pose
                finger = float(gripper.leader_position_unnormalize(0.0))
                position = np.array(START_ARM_POSE + (
                    float(gripper.leader_joint_unnormalize(0.0)), finger, -finger))
            else:
                position = trajectory.leader_position(side, step, gripper)
            msg = JointState(name=list(names.JOINT_STATE_NAMES), position=position.tolist())
            msg.header.stamp = stamp
            publisher.publish(msg)


def main(args=None) -> None:
    run(ScriptedLeader, args=args)
