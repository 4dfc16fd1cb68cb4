"""`cosmos-policy-ros calibrate --robot NAME [--port-leader-left PORT ...] [--with-followers]
[--non-interactive SCRIPT.yaml] [--output PATH]`: record gripper open/close and joint ranges
and write calibration/<robot>.yaml (cosmos_policy_ros.hardware.calibrate)."""
import sys
from pathlib import Path

import yaml

from cosmos_policy_ros.calibration import CalibrationError, calibration_path, load_calibration
from cosmos_policy_ros.hardware.arm import Arm
from cosmos_policy_ros.hardware.arm_config import parse_arm
from cosmos_policy_ros.hardware.calibrate import (
    Calibrator,
    PromptOperator,
    ScriptedOperator,
    updated_calibration,
    write_calibration,
)
from cosmos_policy_ros.hardware.dynamixel.bus import DynamixelCommError
from cosmos_policy_ros.names import ARMS, FOLLOWERS, LEADERS
from cosmos_policy_ros.paths import share_path


def add_arguments(parser) -> None:
    parser.add_argument('--robot', required=True,
                        help='robot name: writes calibration/<robot>.yaml (kept sections: '
                        'cameras, other arms, ...)')
    parser.add_argument('--template', default='aloha_stationary',
                        help='calibration to start from when calibration/<robot>.yaml does not '
                        'exist yet')
    for arm in ARMS:
        parser.add_argument(f'--port-{arm.replace("_", "-")}', dest=f'port_{arm}', default='',
                            metavar='PORT', help=f'serial port of {arm} (default: arms.{arm}.'
                            'port of the file)')
    parser.add_argument('--with-followers', action='store_true',
                        help='also calibrate the followers: their torque is turned OFF, '
                        'support them before starting')
    parser.add_argument('--non-interactive', default='', metavar='SCRIPT.yaml',
                        help='step durations instead of prompts: {gripper_open: s, '
                        'gripper_close: s, sweep: s}')
    parser.add_argument('--output', default='', help='write here instead of calibration/'
                        '<robot>.yaml')


def _source(args) -> tuple:
    """(YAML mapping to update, where it came from, output path)."""
    output = Path(args.output) if args.output else share_path('calibration',
                                                               f'{args.robot}.yaml')
    base = output if output.is_file() else calibration_path(args.template)
    load_calibration(str(base))                      # a broken file is reported, not rewritten
    data = yaml.safe_load(base.read_text())
    data['robot'] = args.robot
    return data, base, output


def _arms(args, data: dict, source: Path) -> tuple:
    """({name: Arm}, {name: port given on the command line})."""
    wanted = list(LEADERS) + (list(FOLLOWERS) if args.with_followers else [])
    entries = data.get('arms') or {}
    ports = {arm: getattr(args, f'port_{arm}') for arm in wanted if getattr(args, f'port_{arm}')}
    arms = {}
    for name in wanted:
        entry = dict(entries.get(name) or {})
        if name in ports:
            entry['port'] = ports[name]
        if not entry.get('port'):
            raise CalibrationError(f'no port for {name}: pass --port-{name.replace("_", "-")} '
                                   f'/dev/ttyDXL_{name} or set arms.{name}.port in {source}')
        arms[name] = Arm(parse_arm(name, entry, str(source)))
    return arms, ports


def run(args) -> int:
    try:
        data, base, output = _source(args)
        arms, ports = _arms(args, data, base)
        operator = (ScriptedOperator.from_yaml(args.non_interactive) if args.non_interactive
                    else PromptOperator())
    except CalibrationError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if not args.non_interactive:
        limp = ', '.join(arms)
        input(f'Torque goes OFF on {limp}: support the arms, then press Enter ')
    calibrator = Calibrator(arms, operator)
    try:
        calibrator.connect()
        result = calibrator.run()
    except (DynamixelCommError, RuntimeError, CalibrationError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    finally:
        calibrator.close()
    try:
        constants = load_calibration(str(base)).gripper
        path = write_calibration(output, updated_calibration(data, result, constants, ports))
    except CalibrationError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'wrote {path}')
    return 0

