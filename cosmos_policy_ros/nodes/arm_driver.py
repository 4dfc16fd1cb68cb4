"""arm_driver: one ALOHA arm's Dynamixel bus (hardware.arm.ArmSupervisor) as ROS interfaces.

A regular node with explicit states (unconfigured -> inactive <-> active, fault, port_lost;
lifecycle nodes are awkward from the PyPI rclpy wheels): at start it configures (opens the
port, checks motor models, writes what differs of the motor configuration: Return_Delay_Time,
Drive_Mode, Secondary_ID, operating modes, velocity and position limits, gripper current
limit, shadow homing; hardware/motor_setup.py) and verifies all of it by read-back; only then,
for followers, it activates (torque on, holding the present position, verified). A failed
verification keeps torque off and names motor, register, expected and found. Leaders stay
torque-off and read-only.

Publishes:
- names.joint_states_topic(arm) (sensor_msgs/JointState, reliable) at `rate` Hz, from the bus
  thread (hardware/rate_loop.py: one read+write cycle per period on absolute deadlines):
  names.JOINT_STATE_NAMES (Interbotix order), rad / gripper motor rad / finger m; velocity;
  effort (mA, or 0.1 % load on XL430/XC430).
- names.DIAGNOSTICS_TOPIC every `diagnostics_period` s: state, hardware errors, temperatures,
  retries, lost/corrupt packets, failed cycles, cycle time, bus bytes per cycle.

Subscribes: names.joint_command_topic(arm) (sensor_msgs/JointState, reliable): `name` ⊆
names.COMMAND_JOINTS, `position` rad (gripper = motor angle); partial commands keep the other
joints' goals; clamped to the calibration limits (the top-level `joint_limits` within the
arm's own) and, in ticks, to the motors' position limits; a command with unknown names, non-finite
values or a length mismatch is rejected whole (logged, counted). Only the newest goal is sent,
at the next cycle.

Services: names.torque_enable_service(arm) (std_srvs/SetBool), names.reboot_service(arm)
(std_srvs/Trigger: reboots every motor, waits until they answer, re-configures and restores
torque, verified; fails with the reason otherwise).

Faults never stop the node: a hardware error holds the arm (no goals) and, with
`auto_recover`, reboots the faulted motors every `retry_period` until the error clears; a lost
port is reopened every `retry_period`.
"""
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.hardware.arm_config import parse_arms
from cosmos_policy_ros.hardware.rate_loop import RateLoop
from cosmos_policy_ros.hardware.supervisor import ArmSupervisor
from cosmos_policy_ros.joint_command import JointCommandError
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.diagnostics import status_level
from cosmos_policy_ros.ros.main import run

PARAMS = (
    Param('arm', 'follower_left', 'arm namespace (an entry of the calibration `arms:`)',
          choices=names.ARMS, read_only=True),
    Param('calibration', 'aloha_stationary', 'calibration/<robot>.yaml (name or path)',
          read_only=True),
    Param('port', '', 'serial port overriding arms.<arm>.port (empty: the calibration\'s)',
          read_only=True),
    Param('rate', 100.0, 'joint_states / bus cycle rate [Hz]', min=1.0, max=500.0,
          read_only=True),
    Param('auto_recover', True, 'reboot motors in hardware error once the cause clears'),
    Param('retry_period', 1.0, 'seconds between reconnect / recovery attempts', min=0.05),
    Param('torque_off_on_exit', True, 'followers: torque off when the node stops (else the '
          'arm keeps holding its last goal)'),
    Param('diagnostics_period', 1.0, 'diagnostics publish period [s]', min=0.05),
    Param('reboot_timeout', 2.0, 'seconds to wait for rebooted motors to answer again',
          min=0.2, read_only=True),
)

class ArmDriverNode(Node):
    def __init__(self):
        super().__init__('arm_driver')
        self.params = params.declare(self, PARAMS, on_change=self._on_params)
        p = self.params
        calibration = load_calibration(p.calibration)
        arms = parse_arms(calibration.arms, calibration.source, calibration.joint_limits)
        if p.arm not in arms:
            raise ValueError(f'{calibration.source}: no `arms.{p.arm}` entry; add it (port, '
                             f'role, ...) or pick one of {sorted(arms)} with arm:=')
        config = arms[p.arm]
        if p.port:
            config = type(config)(**{**config.__dict__, 'port': p.port})
        self.supervisor = ArmSupervisor(config, p.auto_recover, p.retry_period,
                                        torque_off_on_close=p.torque_off_on_exit,
                                        reboot_timeout_s=p.reboot_timeout)

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.joint_pub = self.create_publisher(JointState, names.joint_states_topic(p.arm),
                                               reliable)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC, 10)
        io_group = MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointState, names.joint_command_topic(p.arm), self._on_command,
                                 reliable, callback_group=io_group)
        self.create_service(SetBool, names.torque_enable_service(p.arm), self._on_torque,
                            callback_group=io_group)
        self.create_service(Trigger, names.reboot_service(p.arm), self._on_reboot,
                            callback_group=io_group)
        self._last_reason = ''
        self._last_state = ''
        if not self.supervisor.start(activate=config.is_follower):
            self.get_logger().error(f'not connected yet, retrying every {p.retry_period} s: '
                                    f'{self.supervisor.last_error}')
        # The bus cycle runs in its own thread (RateLoop), not on an rclpy timer: the
        # executor's dispatch cost more CPU than the cycle itself.
        self.bus_loop = RateLoop(self._on_cycle, p.rate, f'{p.arm}-bus').start()
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f'{p.arm} ({config.role}, {config.model}) on '
                               f'{config.port_path}: {self.supervisor.state}')

    def _on_params(self, values) -> None:
        self.supervisor.auto_recover = values.auto_recover
        self.supervisor.retry_period_s = values.retry_period
        self.supervisor.torque_off_on_close = values.torque_off_on_exit

    def _on_cycle(self) -> None:
        state = self.supervisor.cycle()
        if self.supervisor.state != self._last_state:
            self._last_state = self.supervisor.state
            text = f'state {self.supervisor.state} {self.supervisor.last_error}'.rstrip()
            if self.supervisor.state in ('active', 'inactive'):   # rclpy: one level per call site
                self.get_logger().info(text)
            else:
                self.get_logger().error(text)
        if state is None:
            return
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(names.JOINT_STATE_NAMES)
        msg.position = state.position.tolist()
        msg.velocity = state.velocity.tolist()
        msg.effort = state.effort.tolist()
        try:
            self.joint_pub.publish(msg)
        except Exception as exc:      # rclpy's own error types; expected only at shutdown
            if self.context.ok():
                self.get_logger().error(f'{names.joint_states_topic(self.params.arm)}: '
                                        f'publish failed: {exc}')

    def _on_command(self, msg: JointState) -> None:
        try:
            clamped = self.supervisor.set_command(msg.name, msg.position)
        except JointCommandError as exc:
            reason = f'command rejected: {exc}'
            if reason != self._last_reason:         # log each new reason once
                self.get_logger().warning(reason)
            self._last_reason = reason
            return
        reason = 'command clamped to limits: ' + ', '.join(clamped) if clamped else ''
        if reason and reason != self._last_reason:
            self.get_logger().info(reason)
        self._last_reason = reason

    def _on_torque(self, request, response):
        try:
            response.message = self.supervisor.set_torque(request.data)
            response.success = True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            response.success, response.message = False, str(exc)
        return response

    def _on_reboot(self, request, response):
        try:
            response.message = self.supervisor.reboot()
            response.success = True
        except (ConnectionError, RuntimeError) as exc:
            response.success, response.message = False, str(exc)
        return response

    def _publish_diagnostics(self) -> None:
        diag = self.supervisor.diagnostics()
        status = DiagnosticStatus(level=status_level(diag.level),
                                  name=f'{self.get_name()}: {self.params.arm}',
                                  hardware_id=str(diag.values.get('port', '')),
                                  message=diag.message[:500])
        status.values = [KeyValue(key=k, value=str(v)) for k, v in diag.values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def close(self) -> None:
        self.bus_loop.stop()
        self.supervisor.close()


def main(args=None) -> None:
    run(ArmDriverNode, args=args)
