"""`cosmos-policy-ros calibrate` against four emulated Dynamixel arms (real dynamixel-sdk over
ptys): a scripted run while the test moves the motors, then the written YAML read back by
load_calibration; bad inputs (missing port, bad script, unmoved gripper)."""
import io
import math
import subprocess
import sys
import time

import pytest
import yaml

from cosmos_policy_ros import cli
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.hardware.arm import Arm
from cosmos_policy_ros.hardware.arm_config import DEFAULT_IDS, parse_arm
from cosmos_policy_ros.hardware.calibrate import (
    CalibrationFailed,
    Calibrator,
    PromptOperator,
    ScriptedOperator,
    updated_calibration,
    write_calibration,
)
from cosmos_policy_ros.names import ARM_JOINTS, ARMS, COMMAND_JOINTS, FOLLOWERS, LEADERS
from cosmos_policy_ros.rosenv import loopback_env

TICK = 2 * math.pi / 4096
# What the "operator" does: gripper motor angles [rad] per arm, and follower sweep ranges.
GRIPPER = {'leader_left': (0.80, -0.06), 'leader_right': (0.84, -0.04),
           'follower_left': (1.60, 0.62), 'follower_right': (1.64, 0.60)}
SWEEP = {'follower_left': {'waist': (-1.0, 1.2), 'shoulder': (-1.5, 1.0), 'elbow': (-1.2, 1.4),
                           'forearm_roll': (-2.0, 2.0), 'wrist_angle': (-1.5, 1.9),
                           'wrist_rotate': (-2.5, 2.5), 'gripper': (0.6, 1.6)},
         'follower_right': {'waist': (-1.1, 1.0), 'shoulder': (-1.9, 1.1), 'elbow': (-1.0, 1.5),
                            'forearm_roll': (-1.8, 2.2), 'wrist_angle': (-1.4, 2.0),
                            'wrist_rotate': (-2.6, 2.4), 'gripper': (0.58, 1.62)}}


def ticks(rad: float) -> int:
    return round(2048 + rad / TICK)


def act(arm_emulators, line: str) -> None:
    """The operator's hands for one announced step ('step k/n: KIND ARM ...')."""
    kind, arm = line.split(':')[1].split()[:2]
    emu = arm_emulators[arm]
    if kind in ('gripper_open', 'gripper_close'):
        emu.set_position(DEFAULT_IDS['gripper'], ticks(GRIPPER[arm][kind == 'gripper_close']))
        return
    for end in (0, 1):
        for joint, pair in SWEEP[arm].items():
            emu.set_position(DEFAULT_IDS[joint], ticks(pair[end]))
        time.sleep(0.25)


def test_scripted_calibration_writes_a_loadable_yaml(arm_emulators, tmp_path):
    script = tmp_path / 'script.yaml'
    script.write_text(yaml.safe_dump({'gripper_open': 0.4, 'gripper_close': 0.4, 'sweep': 0.9}))
    output = tmp_path / 'calibration' / 'lab_aloha.yaml'
    ports = [arg for arm in ARMS for arg in (f'--port-{arm.replace("_", "-")}',
                                            arm_emulators[arm].port_path)]
    command = [sys.executable, '-m', 'cosmos_policy_ros.cli', 'calibrate', '--robot',
               'lab_aloha', '--template', 'aloha_stationary', *ports, '--with-followers',
               '--non-interactive', str(script), '--output', str(output)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=loopback_env())
    steps = []
    for line in process.stdout:
        if line.startswith('step '):
            steps.append(line.split(':')[1].split()[:2])
            act(arm_emulators, line)
    stderr = process.stderr.read()
    assert process.wait(timeout=30) == 0, stderr
    assert [arm for _, arm in steps[:8]] == [a for a in LEADERS + FOLLOWERS for _ in (0, 1)]
    assert steps[8:] == [['sweep', 'follower_left'], ['sweep', 'follower_right']]

    calibration = load_calibration(str(output))
    gripper = calibration.gripper
    tolerance = 2 * TICK
    for role, (left, right) in (('leader', LEADERS), ('follower', FOLLOWERS)):
        for index, state in enumerate(('open', 'close')):
            expected = (GRIPPER[left][index] + GRIPPER[right][index]) / 2
            assert getattr(gripper, f'{role}_joint_{state}') == pytest.approx(expected,
                                                                             abs=tolerance)
    # Finger positions follow each arm model's linkage from the same angles.
    for role, (left, right), model_arm in (('leader', LEADERS, 'leader_left'),
                                           ('follower', FOLLOWERS, 'follower_left')):
        config = parse_arm(model_arm, {'port': 'x'})
        expected = (config.finger_position(GRIPPER[left][0]) +
                    config.finger_position(GRIPPER[right][0])) / 2
        assert getattr(gripper, f'{role}_position_open') == pytest.approx(expected, abs=2e-4)
    for joint in ARM_JOINTS:
        low = max(SWEEP[arm][joint][0] for arm in FOLLOWERS)
        high = min(SWEEP[arm][joint][1] for arm in FOLLOWERS)
        assert calibration.joint_limits[joint] == pytest.approx((low, high), abs=tolerance)
    for arm in FOLLOWERS:
        written = calibration.arms[arm]['joint_limits']
        assert set(written) == set(COMMAND_JOINTS)
        for joint in COMMAND_JOINTS:
            assert written[joint] == pytest.approx(SWEEP[arm][joint], abs=tolerance)
    for arm in ARMS:
        assert calibration.arms[arm]['port'] == arm_emulators[arm].port_path
    # Sections the tool does not measure are kept from the template.
    template = load_calibration('aloha_stationary')
    assert calibration.cameras == template.cameras
    assert calibration.arms['follower_left']['gripper_current_limit'] == 300
    assert calibration.robot == 'lab_aloha'
    # Every motor is left torque-off (the arms were limp for the operator).
    for emu in arm_emulators.values():
        assert all(emu.register(i, 'Torque_Enable') == 0 for i in DEFAULT_IDS.values())


def test_missing_ports_are_named(tmp_path, capsys):
    output = str(tmp_path / 'out.yaml')
    code = cli.main(['calibrate', '--robot', 'lab', '--template', 'aloha_sim', '--output',
                     output, '--non-interactive', 'unused.yaml'])
    assert code == 2
    assert 'no port for leader_left: pass --port-leader-left' in capsys.readouterr().err
    script = tmp_path / 'script.yaml'
    script.write_text('{gripper_open: 0.1, gripper_close: 0.1, sweep: 0.1}')
    code = cli.main(['calibrate', '--robot', 'lab', '--output', output, '--non-interactive',
                     str(script), '--port-leader-left', str(tmp_path / 'ttyUSB9')])
    assert code == 1
    err = capsys.readouterr().err
    assert f'port {tmp_path / "ttyUSB9"} does not exist; plug in the U2D2' in err
    assert not (tmp_path / 'out.yaml').exists()


def test_bad_script_is_refused(tmp_path, capsys):
    script = tmp_path / 'script.yaml'
    script.write_text('{gripper_open: 1, gripper_close: 1, sweeep: 5}')
    code = cli.main(['calibrate', '--robot', 'lab', '--output', str(tmp_path / 'o.yaml'),
                     '--non-interactive', str(script)])
    assert code == 2
    assert "unknown step 'sweeep'; steps: ['gripper_open', 'gripper_close', 'sweep']" in \
        capsys.readouterr().err


def test_a_gripper_that_did_not_move_fails_the_calibration(arm_emulators):
    arms = {arm: Arm(parse_arm(arm, {'port': arm_emulators[arm].port_path})) for arm in LEADERS}
    operator = ScriptedOperator({'gripper_open': 0.05, 'gripper_close': 0.05, 'sweep': 0.05},
                                out=io.StringIO())
    calibrator = Calibrator(arms, operator)
    calibrator.connect()
    try:
        with pytest.raises(CalibrationFailed, match=r'leader_left: gripper open .* differ by '
                                                    r'less than 0.05 rad; open it fully'):
            calibrator.run()
    finally:
        calibrator.close()


def test_prompted_leader_calibration_keeps_follower_constants(arm_emulators, tmp_path):
    """The interactive path, with the test as the person at the keyboard: each prompt is
    answered (Enter) after the hands have moved the emulated leader."""
    arms = {arm: Arm(parse_arm(arm, {'port': arm_emulators[arm].port_path})) for arm in LEADERS}
    sweep = {'waist': (-0.9, 0.8), 'shoulder': (-1.2, 0.9), 'elbow': (-1.0, 1.3),
             'forearm_roll': (-1.5, 1.5), 'wrist_angle': (-1.2, 1.6),
             'wrist_rotate': (-2.0, 2.0), 'gripper': (-0.06, 0.8)}
    prompts = []

    def person(prompt: str) -> str:
        prompts.append(prompt)
        step = len(prompts)
        if step <= 4:                      # open/close left, then open/close right
            arm = LEADERS[(step - 1) // 2]
            arm_emulators[arm].set_position(DEFAULT_IDS['gripper'],
                                        ticks(GRIPPER[arm][(step - 1) % 2]))
        else:                              # a sweep: this runs while the tool samples
            arm = LEADERS[step - 5]
            for end in (0, 1):
                for joint, pair in sweep.items():
                    arm_emulators[arm].set_position(DEFAULT_IDS[joint], ticks(pair[end]))
                time.sleep(0.15)
        return ''

    calibrator = Calibrator(arms, PromptOperator(input_fn=person, out=io.StringIO()))
    calibrator.connect()
    try:
        result = calibrator.run()
    finally:
        calibrator.close()
    assert prompts[0] == '[1/6] leader_left: open the gripper fully, then press Enter '
    base = load_calibration('aloha_stationary')
    data = yaml.safe_load(open(base.source))
    written = write_calibration(tmp_path / 'lab.yaml',
                                updated_calibration(data, result, base.gripper))
    calibration = load_calibration(str(written))
    assert calibration.gripper.leader_joint_open == pytest.approx(0.82, abs=2 * TICK)
    assert calibration.gripper.leader_joint_close == pytest.approx(-0.05, abs=2 * TICK)
    for key in ('follower_joint_open', 'follower_joint_close', 'follower_position_open'):
        assert getattr(calibration.gripper, key) == getattr(base.gripper, key)
    for joint in ARM_JOINTS:                # leaders swept: their range bounds the followers
        assert calibration.joint_limits[joint] == pytest.approx(sweep[joint], abs=2 * TICK)
    assert 'joint_limits' not in calibration.arms['follower_left']
    assert calibration.cameras == base.cameras
