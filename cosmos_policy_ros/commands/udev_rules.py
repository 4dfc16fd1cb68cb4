"""`cosmos-policy-ros udev-rules --serial follower_left=FT6Z5XYZ ... [--output FILE]`.

Without --serial it lists the U2D2 serials found under /dev/serial/by-id and says how to
assign them (plug the adapters in one at a time to tell them apart).
"""
import sys
from pathlib import Path

from cosmos_policy_ros.hardware import udev


def add_arguments(parser) -> None:
    parser.add_argument('--serial', action='append', default=[], metavar='ARM=SERIAL',
                        help='U2D2 serial of an arm (leader_left, leader_right, follower_left, '
                        'follower_right); repeat per arm')
    parser.add_argument('--output', default='', help=f'write here (e.g. {udev.RULES_FILE}); '
                        'default: stdout')
    parser.add_argument('--serial-by-id', default=str(udev.SERIAL_BY_ID),
                        help='where to look for plugged-in adapters')
    parser.add_argument('--v4l-by-id', default=str(udev.V4L_BY_ID),
                        help='where to look for cameras (hints only)')


def run(args) -> int:
    try:
        serials = udev.parse_serial_args(args.serial)
    except udev.UdevError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if not serials:
        found = udev.detect_u2d2_serials(Path(args.serial_by_id))
        if not found:
            print(f'error: no --serial given and no U2D2 found in {args.serial_by_id}; plug the '
                  'adapters in, or pass --serial ARM=SERIAL per arm', file=sys.stderr)
            return 2
        listing = '\n'.join(f'  {serial}  ({link})' for serial, link in found.items())
        print(f'found {len(found)} U2D2 adapter(s):\n{listing}\nplug them in one at a time to '
              'see which arm each belongs to, then run:\n  cosmos-policy-ros udev-rules '
              + ' '.join(f'--serial <arm>={serial}' for serial in found), file=sys.stderr)
        return 2
    text = udev.rules_text(serials, udev.detect_cameras(Path(args.v4l_by_id)))
    if args.output:
        Path(args.output).write_text(text)
        print(f'wrote {args.output}; install: sudo cp {args.output} /etc/udev/rules.d/ && '
              'sudo udevadm control --reload && sudo udevadm trigger', file=sys.stderr)
    else:
        sys.stdout.write(text)
    missing = [arm for arm in udev.ARMS if arm not in serials]
    if missing:
        print(f'note: no rule for {missing}', file=sys.stderr)
    return 0
