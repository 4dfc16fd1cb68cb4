"""The calibration procedure, ROS-free: gripper open/close and joint ranges -> robot YAML.

    calibrator = Calibrator({name: Arm(config)}, operator)   # operator: PromptOperator (a
    result = calibrator.run()                                # person) or ScriptedOperator
    data = updated_calibration(yaml_data, result, ports)     # other sections preserved
    write_calibration(path, data)                            # validated before it replaces

Steps: each calibrated arm's gripper fully open, then fully closed (the arm is torque-off and
read-only); then a sweep of every joint of the followers (or, when only leaders are
calibrated, of the leaders: teleop maps their joints 1:1) while min/max are recorded.
Gripper constants: the mean of the left and right arm of each role; a role not calibrated
keeps the file's constants. Joint limits: the range every swept arm reached, within the
follower URDF limits; swept followers also get arms.<arm>.joint_limits (gripper included).
"""
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from cosmos_policy_ros.calibration import CalibrationError, GripperConstants, load_calibration
from cosmos_policy_ros.hardware.arm import Arm
from cosmos_policy_ros.hardware.arm_config import ARM_MODELS
from cosmos_policy_ros.names import ARM_JOINTS, COMMAND_JOINTS, FOLLOWERS, LEADERS

STEP_KINDS = ('gripper_open', 'gripper_close', 'sweep')
_GRIPPER = COMMAND_JOINTS.index('gripper')
_FINGER = len(COMMAND_JOINTS)                 # left_finger in the joint_states layout
_FOLLOWER_URDF = ARM_MODELS['aloha_vx300s'].joint_limits


class CalibrationFailed(RuntimeError):
    """A measurement is unusable (gripper not moved, joint not swept); says what to redo."""


@dataclass(frozen=True)
class Step:
    kind: str
    arm: str

    @property
    def instruction(self) -> str:
        if self.kind == 'gripper_open':
            return f'{self.arm}: open the gripper fully'
        if self.kind == 'gripper_close':
            return f'{self.arm}: close the gripper fully'
        return (f'{self.arm}: move every joint (gripper included) slowly through its whole '
                'range')


def plan_steps(arms) -> list:
    ordered = [arm for arm in LEADERS + FOLLOWERS if arm in arms]
    steps = [Step(kind, arm) for arm in ordered for kind in ('gripper_open', 'gripper_close')]
    swept = [arm for arm in ordered if arm in FOLLOWERS] or ordered
    return steps + [Step('sweep', arm) for arm in swept]


class PromptOperator:
    """A person at the keyboard: Enter ends each step."""

    def __init__(self, input_fn: Callable = input, out=sys.stdout):
        self.input = input_fn
        self.out = out

    def hold(self, step: Step, index: int, total: int) -> None:
        self.input(f'[{index}/{total}] {step.instruction}, then press Enter ')

    def sweep(self, step: Step, index: int, total: int, sample: Callable) -> None:
        print(f'[{index}/{total}] {step.instruction}; press Enter when done', file=self.out)
        done = threading.Event()
        threading.Thread(target=lambda: (self.input(''), done.set()), daemon=True,
                         name='calibrate-enter').start()
        while not done.is_set():
            print(f'\r{sample()}', end='', file=self.out, flush=True)
            time.sleep(0.02)
        print(file=self.out)


class ScriptedOperator:
    """Non-interactive: each step lasts its kind's duration [s] (tests, remote bring-up)."""

    def __init__(self, durations: dict, out=sys.stdout):
        for key, value in durations.items():
            if key not in STEP_KINDS:
                raise CalibrationError(f'calibration script: unknown step {key!r}; steps: '
                                       f'{list(STEP_KINDS)}')
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise CalibrationError(f'calibration script: {key} duration must be > 0 s, '
                                       f'got {value!r}')
        missing = [kind for kind in STEP_KINDS if kind not in durations]
        if missing:
            raise CalibrationError(f'calibration script: missing durations for {missing}')
        self.durations = {key: float(value) for key, value in durations.items()}
        self.out = out

    @classmethod
    def from_yaml(cls, path) -> 'ScriptedOperator':
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, dict):
            raise CalibrationError(f'{path}: expected a mapping step -> seconds, e.g. '
                                   '{gripper_open: 2, gripper_close: 2, sweep: 10}')
        return cls(data)

    def _announce(self, step: Step, index: int, total: int) -> None:
        print(f'step {index}/{total}: {step.kind} {step.arm} '
              f'({self.durations[step.kind]:g} s): {step.instruction}', file=self.out,
              flush=True)

    def hold(self, step: Step, index: int, total: int) -> None:
        self._announce(step, index, total)
        time.sleep(self.durations[step.kind])

    def sweep(self, step: Step, index: int, total: int, sample: Callable) -> None:
        self._announce(step, index, total)
        deadline = time.monotonic() + self.durations[step.kind]
        while time.monotonic() < deadline:
            sample()
            time.sleep(0.005)


@dataclass(frozen=True)
class GripperReading:
    joint: float      # gripper motor angle [rad]
    finger: float     # left finger position [m]


@dataclass
class CalibrationResult:
    grippers: dict = field(default_factory=dict)    # (arm, 'open'|'close') -> GripperReading
    ranges: dict = field(default_factory=dict)      # arm -> {joint: (low, high)} [rad]
    warnings: list = field(default_factory=list)


class Calibrator:
    def __init__(self, arms: dict, operator, min_gripper_travel: float = 0.05,
                 min_sweep: float = 0.1, samples: int = 5):
        unknown = [name for name in arms if name not in LEADERS + FOLLOWERS]
        if unknown:
            raise CalibrationError(f'unknown arm(s) {unknown}; arms: {list(LEADERS + FOLLOWERS)}')
        self.arms: dict = arms
        self.operator = operator
        self.min_gripper_travel = min_gripper_travel
        self.min_sweep = min_sweep
        self.samples = samples

    def connect(self) -> None:
        """Open every bus, check the motor models, turn torque off (arms go limp), and
        configure the motors as the driver does (Drive_Mode, shadows...), so positions read
        in the driver's convention even on a factory-fresh arm."""
        for arm in self.arms.values():
            arm.bus.connect()
            arm.verify_motors()
            arm.set_torque(False)
            arm.configure()

    def close(self) -> None:
        for arm in self.arms.values():
            arm.close(torque_off=True)

    def run(self) -> CalibrationResult:
        result = CalibrationResult()
        steps = plan_steps(self.arms)
        for index, step in enumerate(steps, 1):
            arm = self.arms[step.arm]
            if step.kind == 'sweep':
                if not result.ranges:
                    self._check_grippers(result)       # fail before the long part
                result.ranges[step.arm] = self._sweep(arm, step, index, len(steps))
            else:
                self.operator.hold(step, index, len(steps))
                result.grippers[(step.arm, step.kind.split('_')[1])] = self._gripper(arm)
        return result

    def _gripper(self, arm: Arm) -> GripperReading:
        readings = np.array([arm.read().position for _ in range(self.samples)])
        joint, finger = np.median(readings[:, _GRIPPER]), np.median(readings[:, _FINGER])
        return GripperReading(float(joint), float(finger))

    def _sweep(self, arm: Arm, step: Step, index: int, total: int) -> dict:
        low = np.full(len(COMMAND_JOINTS), np.inf)
        high = np.full(len(COMMAND_JOINTS), -np.inf)

        def sample() -> str:
            position = arm.read().position[:len(COMMAND_JOINTS)]
            np.minimum(low, position, out=low)
            np.maximum(high, position, out=high)
            return '  '.join(f'{j[:5]} {lo:+.2f}..{hi:+.2f}'
                             for j, lo, hi in zip(COMMAND_JOINTS, low, high))

        self.operator.sweep(step, index, total, sample)
        sample()
        span = high - low
        short = [f'{joint} ({travel:.3f} rad)' for joint, travel in zip(COMMAND_JOINTS, span)
                 if not travel >= self.min_sweep]
        if short:
            raise CalibrationFailed(f'{step.arm}: joints moved less than {self.min_sweep} rad '
                                    f'during the sweep: {short}; move each through its whole '
                                    'range and run again')
        return {joint: (float(lo), float(hi)) for joint, lo, hi in zip(COMMAND_JOINTS, low, high)}

    def _check_grippers(self, result: CalibrationResult) -> None:
        for arm in self.arms:
            opened, closed = result.grippers[(arm, 'open')], result.grippers[(arm, 'close')]
            if abs(opened.joint - closed.joint) < self.min_gripper_travel:
                raise CalibrationFailed(
                    f'{arm}: gripper open ({opened.joint:+.3f} rad) and closed '
                    f'({closed.joint:+.3f} rad) differ by less than {self.min_gripper_travel} '
                    'rad; open it fully at the first prompt and close it fully at the second')
        for role_arms in (LEADERS, FOLLOWERS):
            left, right = role_arms
            if left in self.arms and right in self.arms:
                for state in ('open', 'close'):
                    gap = abs(result.grippers[(left, state)].joint -
                              result.grippers[(right, state)].joint)
                    if gap > 0.15:
                        result.warnings.append(
                            f'{left} and {right} gripper {state} differ by {gap:.2f} rad; one '
                            'set of constants serves both, check the gripper horns')


def gripper_constants(result: CalibrationResult, base: GripperConstants) -> dict:
    """The file's constants with every measured role replaced by the left/right mean."""
    values = {key: value for key, value in base.as_dict().items()
              if key not in ('name', 'description')}
    for role, role_arms in (('leader', LEADERS), ('follower', FOLLOWERS)):
        measured = [arm for arm in role_arms if (arm, 'open') in result.grippers]
        for state in ('open', 'close') if measured else ():
            readings = [result.grippers[(arm, state)] for arm in measured]
            values[f'{role}_joint_{state}'] = round(float(np.mean([r.joint for r in readings])), 5)
            values[f'{role}_position_{state}'] = round(
                float(np.mean([r.finger for r in readings])), 6)
    return values


def updated_calibration(data: dict, result: CalibrationResult, base: GripperConstants,
                        ports: dict | None = None) -> dict:
    """A copy of the YAML mapping with measured gripper constants and limits (and the ports
    used); every other key and section is kept as it was."""
    data = dict(data)
    stamp = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    arms_measured = sorted({arm for arm, _ in result.grippers})
    data.pop('gripper_preset', None)
    data['gripper'] = {**gripper_constants(result, base),
                       'description': f'measured by cosmos-policy-ros calibrate {stamp} '
                       f'({", ".join(arms_measured)}; others from {base.name})'}
    if result.ranges:
        limits = {}
        for joint in ARM_JOINTS:
            low = max([result.ranges[arm][joint][0] for arm in result.ranges]
                      + [_FOLLOWER_URDF[joint][0]])
            high = min([result.ranges[arm][joint][1] for arm in result.ranges]
                       + [_FOLLOWER_URDF[joint][1]])
            limits[joint] = [round(low, 5), round(high, 5)]
        data['joint_limits'] = limits
    arms = {name: dict(entry or {}) for name, entry in (data.get('arms') or {}).items()}
    for name, port in (ports or {}).items():
        arms.setdefault(name, {})['port'] = port
    for name, ranges in result.ranges.items():
        if name in FOLLOWERS:
            arms.setdefault(name, {})['joint_limits'] = {
                joint: [round(low, 5), round(high, 5)] for joint, (low, high) in ranges.items()}
    if arms:
        data['arms'] = arms
    return data


def write_calibration(path, data: dict) -> Path:
    """Write atomically after load_calibration accepts the new text; the old file -> .bak."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'.{path.stem}.new.yaml')
    header = ('# Written by `cosmos-policy-ros calibrate`; the previous file (with its comments) '
              'is in .bak\n')
    temporary.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    try:
        load_calibration(str(temporary))
    except CalibrationError as exc:
        temporary.unlink()
        raise CalibrationError(f'{path}: not written, the result does not validate: {exc}') \
            from None
    if path.exists():
        os.replace(path, path.with_name(path.name + '.bak'))
    os.replace(temporary, path)
    return path
