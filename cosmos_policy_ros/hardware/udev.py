"""udev rules for the ALOHA U2D2 adapters (stable /dev/ttyDXL_<arm> names, latency_timer 1).

One rule per arm, matched on the U2D2's FTDI serial number:

    SUBSYSTEM=="tty", ATTRS{serial}=="FT6Z5XYZ", ENV{ID_MM_DEVICE_IGNORE}="1",
    ATTR{device/latency_timer}="1", SYMLINK+="ttyDXL_follower_left"

latency_timer 1 ms (the FTDI default is 16 ms) keeps a sync read of nine motors at ~2 ms;
ID_MM_DEVICE_IGNORE stops ModemManager from probing the port. Cameras need no rule: their
/dev/v4l/by-id links are already stable, so only hints for the `cameras:` section are added.
"""
import re
from pathlib import Path

from cosmos_policy_ros.names import ARMS

RULES_FILE = '99-cosmos-policy-ros.rules'
SERIAL_BY_ID = Path('/dev/serial/by-id')
V4L_BY_ID = Path('/dev/v4l/by-id')
# FTDI serials are 8 alphanumerics; other USB-serial chips use up to 32. Anything else
# (quotes, spaces, globs) would change the meaning of the rule.
_SERIAL = re.compile(r'[A-Za-z0-9]{4,32}')
# /dev/serial/by-id/usb-FTDI_USB__-__Serial_Converter_FT6Z5XYZ-if00-port0
_FTDI_LINK = re.compile(r'usb-FTDI_.*_(?P<serial>[A-Za-z0-9]+)-if\d+-port\d+')


class UdevError(ValueError):
    """A bad --serial argument; the message names it and the fix."""


def symlink_name(arm: str) -> str:
    return f'ttyDXL_{arm}'


def check_serial(arm: str, serial: str) -> str:
    if arm not in ARMS:
        raise UdevError(f'--serial {arm}={serial}: unknown arm {arm!r}; use one of {list(ARMS)}')
    if not _SERIAL.fullmatch(serial):
        raise UdevError(f'--serial {arm}={serial}: serial {serial!r} must be 4-32 letters or '
                        'digits, as in /dev/serial/by-id/usb-FTDI_..._<SERIAL>-if00-port0 or '
                        '`udevadm info -a -n /dev/ttyUSB0 | grep serial`')
    return serial


def parse_serial_args(items) -> dict:
    """['follower_left=FT6Z5XYZ', ...] -> {arm: serial}, refusing duplicates either way."""
    serials = {}
    for item in items:
        arm, sep, serial = item.partition('=')
        if not sep:
            raise UdevError(f'--serial {item!r}: expected ARM=SERIAL, e.g. '
                            'follower_left=FT6Z5XYZ')
        arm, serial = arm.strip(), serial.strip()
        check_serial(arm, serial)
        if arm in serials:
            raise UdevError(f'--serial: {arm} given twice ({serials[arm]}, {serial})')
        if serial in serials.values():
            other = next(a for a, s in serials.items() if s == serial)
            raise UdevError(f'--serial: serial {serial} given for both {other} and {arm}; each '
                            'arm has its own U2D2')
        serials[arm] = serial
    return serials


def detect_u2d2_serials(by_id: Path = SERIAL_BY_ID) -> dict:
    """{serial: by-id link} of the FTDI adapters (U2D2) plugged in now."""
    found = {}
    if by_id.is_dir():
        for link in sorted(by_id.iterdir()):
            match = _FTDI_LINK.fullmatch(link.name)
            if match:
                found[match['serial']] = str(link)
    return found


def detect_cameras(by_id: Path = V4L_BY_ID) -> list:
    """Stable capture-device links (the -video-index0 node of each camera)."""
    if not by_id.is_dir():
        return []
    return [str(link) for link in sorted(by_id.iterdir()) if link.name.endswith('index0')]


def rule_line(arm: str, serial: str) -> str:
    check_serial(arm, serial)
    return (f'SUBSYSTEM=="tty", ATTRS{{serial}}=="{serial}", ENV{{ID_MM_DEVICE_IGNORE}}="1", '
            f'ATTR{{device/latency_timer}}="1", SYMLINK+="{symlink_name(arm)}"')


def rules_text(serials: dict, cameras=()) -> str:
    """The rules file: one line per arm (ARMS order), then camera hints as comments."""
    install = (f'# Install: sudo cp {RULES_FILE} /etc/udev/rules.d/ && sudo udevadm control '
               '--reload && sudo udevadm trigger')
    lines = ['# cosmos-policy-ros: U2D2 (Dynamixel) adapters of the ALOHA arms.', install,
             '# Then each arm is /dev/ttyDXL_<arm> (arms.<arm>.port in calibration/<robot>.yaml).']
    lines += [rule_line(arm, serials[arm]) for arm in ARMS if arm in serials]
    if cameras:
        hint = '# Cameras need no rule; their by-id links are stable. In calibration/<robot>.yaml:'
        lines += ['', hint, '#   cameras:']
        lines += [(f'#     <cam_high|cam_left_wrist|cam_right_wrist>: {{backend: opencv, '
                   f'device: {device}, fourcc: MJPG, fps: 30}}') for device in cameras]
    return '\n'.join(lines) + '\n'
