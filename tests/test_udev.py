"""udev rules for the U2D2 adapters: the generated text, serial validation, detection."""
import re

import pytest

from cosmos_policy_ros import cli
from cosmos_policy_ros.hardware import udev

SERIALS = {'leader_left': 'FT6Z5AAA', 'leader_right': 'FT6Z5BBB',
           'follower_left': 'FT6Z5CCC', 'follower_right': 'FT6Z5DDD'}
RULE = re.compile(r'SUBSYSTEM=="tty", ATTRS\{serial\}=="(?P<serial>\w+)", '
                  r'ENV\{ID_MM_DEVICE_IGNORE\}="1", ATTR\{device/latency_timer\}="1", '
                  r'SYMLINK\+="ttyDXL_(?P<arm>\w+)"')


def test_rules_give_each_arm_its_symlink_and_latency_timer_1():
    text = udev.rules_text(SERIALS)
    rules = [line for line in text.splitlines() if line and not line.startswith('#')]
    assert len(rules) == 4
    parsed = {RULE.fullmatch(line)['arm']: RULE.fullmatch(line)['serial'] for line in rules}
    assert parsed == SERIALS
    assert rules[0] == ('SUBSYSTEM=="tty", ATTRS{serial}=="FT6Z5CCC", '
                        'ENV{ID_MM_DEVICE_IGNORE}="1", ATTR{device/latency_timer}="1", '
                        'SYMLINK+="ttyDXL_follower_left"')
    assert 'udevadm control --reload && sudo udevadm trigger' in text


@pytest.mark.parametrize('items, message', [
    (['follower_left=FT6Z"5X'], r'must be 4-32 letters or digits'),
    (['follower_left=FT 5X'], r'must be 4-32 letters or digits'),
    (['follower_middle=FT6Z5XYZ'], r"unknown arm 'follower_middle'; use one of"),
    (['follower_left'], r'expected ARM=SERIAL'),
    (['follower_left=FT6Z5XYZ', 'follower_left=FT6Z5XYA'], r'follower_left given twice'),
    (['follower_left=FT6Z5XYZ', 'leader_left=FT6Z5XYZ'],
     r'serial FT6Z5XYZ given for both follower_left and leader_left'),
])
def test_bad_serial_arguments_are_named(items, message):
    with pytest.raises(udev.UdevError, match=message):
        udev.parse_serial_args(items)


def test_cli_writes_the_file_with_camera_hints(tmp_path, capsys):
    v4l = tmp_path / 'v4l'
    v4l.mkdir()
    camera = v4l / 'usb-046d_HD_Pro_Webcam_C920_ABCD1234-video-index0'
    camera.symlink_to('/dev/null')
    (v4l / 'usb-046d_HD_Pro_Webcam_C920_ABCD1234-video-index1').symlink_to('/dev/null')
    output = tmp_path / udev.RULES_FILE
    code = cli.main(['udev-rules', '--serial', 'follower_left=FT6Z5CCC', '--serial',
                     'leader_left=FT6Z5AAA', '--output', str(output), '--v4l-by-id', str(v4l)])
    assert code == 0
    text = output.read_text()
    assert [m['arm'] for m in RULE.finditer(text)] == ['follower_left', 'leader_left']
    assert f'device: {camera}' in text and 'index1' not in text
    err = capsys.readouterr().err
    assert "no rule for ['follower_right', 'leader_right']" in err


def test_cli_without_serials_lists_detected_adapters(tmp_path, capsys):
    by_id = tmp_path / 'by-id'
    by_id.mkdir()
    for serial in ('FT6Z5AAA', 'FT6Z5BBB'):
        (by_id / f'usb-FTDI_USB__-__Serial_Converter_{serial}-if00-port0').symlink_to('/dev/null')
    (by_id / 'usb-Arduino_Uno_1234-if00').symlink_to('/dev/null')
    assert udev.detect_u2d2_serials(by_id).keys() == {'FT6Z5AAA', 'FT6Z5BBB'}
    code = cli.main(['udev-rules', '--serial-by-id', str(by_id)])
    assert code == 2
    err = capsys.readouterr().err
    assert 'found 2 U2D2 adapter(s)' in err
    assert '--serial <arm>=FT6Z5AAA --serial <arm>=FT6Z5BBB' in err
    assert cli.main(['udev-rules', '--serial-by-id', str(tmp_path / 'none')]) == 2
    assert 'no U2D2 found' in capsys.readouterr().err
