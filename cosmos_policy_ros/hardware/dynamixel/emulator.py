"""A Dynamixel Protocol 2.0 bus emulated on a pseudo-terminal, for tests and benchmarks.

    with DynamixelEmulator.for_arm('aloha_vx300s') as emu:   # or DynamixelEmulator({id: model})
        bus = DynamixelBus(emu.port_path); ...               # any Protocol 2.0 client works
        emu.drop_status(2); emu.corrupt_status(1)            # lose / garble next status packets
        emu.set_hardware_error(9, 0x20)                      # overload: torque off, ALERT bit
        emu.vanish(); emu.restore()                          # unplug / replug the port
        emu.power_cycle(3); emu.ignore_writes(3, 'Drive_Mode')   # brown-out; a write that
        emu.reboot_times[5] = 3.0                                # does not stick; a slow
        emu.register(9, 'Current_Limit'); emu.motors[9].goal     # restart

`for_arm` builds an arm as Interbotix leaves it configured (Drive_Mode, Secondary_ID,
Return_Delay_Time 0, Velocity_Limit 131) or, with `factory_fresh=True`, as ROBOTIS ships the
motors (Return_Delay_Time 250, Drive_Mode 0, no Secondary_ID); `mount_errors` offsets shadows.
`port_path` is a stable symlink (like a udev name) to the pty slave; `vanish` closes the pty so
an open client gets EIO, and `restore` makes a new pty behind the same symlink.

The emulator answers ping, read, write, sync read, sync write, bulk read and reboot. It
de-stuffs instruction bodies and treats an unstuffed FF FF FD inside a body as a new header, as
a motor does (so dynamixel-sdk 4.1.0's unstuffed packets are misframed), checks CRCs, and
stuffs its status packets, each sent after the motor's Return_Delay_Time (2 us units).
Motor behaviour (write rules, reverse Drive_Mode, shadows, fights, overload, reboot delay) is in
emulated_motor.py. Wire time is not modelled unless `wire_baud` is given (then each status
packet is delayed by bytes * 10 / baud).
Run standalone: python -m cosmos_policy_ros.hardware.dynamixel.emulator --help
"""
import argparse
import os
import select
import signal
import tempfile
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_policy_ros.hardware.dynamixel import protocol as P
from cosmos_policy_ros.hardware.dynamixel.emulated_motor import (
    EEPROM_END,
    EmulatedMotor,
    Joint,
)
from cosmos_policy_ros.hardware.dynamixel.tables import MODELS, MODELS_BY_NUMBER

RETURN_DELAY_UNIT_S = 2e-6


@dataclass
class EmulatorStats:
    instructions: dict = field(default_factory=dict)   # instruction code -> count
    crc_errors: int = 0
    framing_errors: int = 0       # unstuffed FF FF FD inside a body
    dropped: int = 0
    corrupted: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    eeprom_writes: int = 0        # EEPROM values stored (wear; a configured arm needs none)
    rejected: list = field(default_factory=list)   # (id, address, error) of refused writes
    return_delay_s: float = 0.0   # Return_Delay_Time waited before status packets


class DynamixelEmulator:
    def __init__(self, motors: dict, secondary_ids: dict | None = None,
                 link_path: str | None = None, wire_baud: int | None = None,
                 reboot_time_s: float = 0.5, mirrored: dict | None = None,
                 overload_s: float = 1.0):
        """motors: {id: model name or number}; secondary_ids: {shadow id: primary id} (the
        shadows' Secondary_ID); mirrored: {shadow id: (primary id, mount error ticks)} couples
        the shafts of a shadow and its primary (one rigid joint)."""
        self.motors = {}
        for dxl_id, model in motors.items():
            model = MODELS_BY_NUMBER[model] if isinstance(model, int) else MODELS[model]
            self.motors[int(dxl_id)] = EmulatedMotor(int(dxl_id), model)
        for shadow, primary in (secondary_ids or {}).items():
            self.motors[shadow].set('Secondary_ID', primary)
        self.joints = {dxl_id: Joint(motor) for dxl_id, motor in self.motors.items()}
        for shadow, (primary, error) in (mirrored or {}).items():
            self.joints[primary].add_mirrored(self.motors[shadow], error)
            self.joints[shadow] = self.joints[primary]
        self._tmp = None
        if link_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='dxl_emu_')
            link_path = os.path.join(self._tmp.name, 'ttyDXL')
        self.port_path = str(link_path)
        self.wire_baud = wire_baud
        self.reboot_time_s = reboot_time_s
        self.reboot_times: dict = {}        # id -> restart time overriding reboot_time_s
        self.overload_s = overload_s
        self.stats = EmulatorStats()
        self._lock = threading.RLock()
        self._drop = 0
        self._corrupt = 0
        self._fault_ids = None
        self._master = self._slave = None
        self._buffer = bytearray()
        self._last_rx = 0.0
        self._last_advance = time.monotonic()
        self._stop = threading.Event()
        self._thread = None

    @classmethod
    def for_arm(cls, arm_model: str = 'aloha_vx300s', factory_fresh: bool = False,
                mount_errors: dict | None = None, **kwargs) -> 'DynamixelEmulator':
        """The nine motors of an ALOHA arm with default IDs (shadows 3, 5 on 2, 4)."""
        from cosmos_policy_ros.hardware.arm_config import ARM_MODELS, DEFAULT_IDS, SHADOWS
        model = ARM_MODELS[arm_model]
        motors = {DEFAULT_IDS[slot]: name for slot, name in model.motors.items()}
        shadows = {DEFAULT_IDS[s]: DEFAULT_IDS[p] for s, p in SHADOWS.items()}
        emulator = cls(motors, None if factory_fresh else shadows, **kwargs)
        if not factory_fresh:
            for slot, dxl_id in DEFAULT_IDS.items():
                motor = emulator.motors[dxl_id]
                motor.set('Return_Delay_Time', 0)
                motor.set('Drive_Mode', model.drive_modes.get(slot, 0))
                motor.set('Velocity_Limit', 131)
        for shadow, primary in shadows.items():
            error = (mount_errors or {}).get(shadow, 0)
            emulator.joints[primary].add_mirrored(emulator.motors[shadow], error)
            emulator.joints[shadow] = emulator.joints[primary]
        for motor in emulator.motors.values():
            motor.reset_ram()                  # goals = the present positions just set up
        return emulator

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> 'DynamixelEmulator':
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name='dxl-emulator', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_pty()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> 'DynamixelEmulator':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)          # no echo/line discipline before a client opens it
        with self._lock:
            self._master, self._slave = master, slave
            self._buffer.clear()
        link = Path(self.port_path)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.ttyname(slave))

    def _close_pty(self) -> None:
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
        link = Path(self.port_path)
        if link.is_symlink():
            link.unlink()

    # --- fault injection and inspection -----------------------------------------------
    def drop_status(self, count: int = 1, ids=None) -> None:
        """Do not send the next `count` status packets (of `ids`, or of any motor)."""
        with self._lock:
            self._drop, self._fault_ids = count, set(ids) if ids else None

    def corrupt_status(self, count: int = 1, ids=None) -> None:
        """Send the next `count` status packets with a wrong CRC."""
        with self._lock:
            self._corrupt, self._fault_ids = count, set(ids) if ids else None

    def set_hardware_error(self, dxl_id: int, bits: int = 0x20, persistent: bool = False):
        """A motor enters hardware error: torque off, ALERT bit on every status packet. A
        reboot clears it unless `persistent` (then only after `clear_fault_cause`)."""
        with self._lock:
            motor = self.motors[dxl_id]
            motor.trip(bits)
            motor.fault_persistent = persistent

    def clear_fault_cause(self, dxl_id: int) -> None:
        with self._lock:
            self.motors[dxl_id].fault_persistent = False

    def power_cycle(self, dxl_id: int) -> None:
        """The motor restarts on its own (a supply dip): RAM reset, torque off, no ALERT."""
        with self._lock:
            self._advance()
            self.motors[dxl_id].reboot(self.reboot_time_s)

    def ignore_writes(self, dxl_id: int, name: str) -> None:
        """Writes of `name` to this motor are acknowledged but do not stick."""
        with self._lock:
            self.motors[dxl_id].ignored.add(name)

    def obstruct(self, dxl_id: int, position: int | None) -> None:
        """Put an obstacle at `position` ticks (None removes it)."""
        with self._lock:
            self.motors[dxl_id].obstacle = None if position is None else float(position)

    def vanish(self) -> None:
        """Unplug: the pty closes (clients get EIO) and the symlink disappears."""
        self._close_pty()

    def restore(self) -> None:
        """Replug: a new pty behind the same symlink."""
        self._open_pty()

    def register(self, dxl_id: int, name: str) -> int:
        with self._lock:
            self._advance()
            self.motors[dxl_id].publish()
            return self.motors[dxl_id].get(name)

    def set_position(self, dxl_id: int, ticks: int) -> None:
        """Move a motor's joint by hand (a leader arm being teleoperated): the motor then
        reads `ticks`, and a shadow on the same joint moves with it."""
        with self._lock:
            self._advance()
            self.joints[dxl_id].set_present(self.motors[dxl_id], float(ticks))

    # --- serving ----------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                data = os.read(master, 4096) if ready else b''
            except (OSError, ValueError):
                time.sleep(0.01)     # vanished or being replaced
                continue
            with self._lock:
                if master != self._master:
                    continue
                now = time.monotonic()
                if data:
                    self.stats.rx_bytes += len(data)
                    self._buffer += data
                    self._last_rx = now
                    self._parse()
                else:
                    self._advance()             # the motors move (and heat) between packets
                    if self._buffer and now - self._last_rx > 0.1:
                        self._buffer.clear()    # a motor's inter-byte timeout

    def _parse(self) -> None:
        buf = self._buffer
        while True:
            start = buf.find(P.HEADER)
            if start < 0:
                del buf[:max(0, len(buf) - 3)]
                return
            del buf[:start]
            if len(buf) < 7:
                return
            length = buf[5] | (buf[6] << 8)
            if length < 3 or length > 1024:
                del buf[:1]
                continue
            if len(buf) < 7 + length:
                return
            body = bytes(buf[7:7 + length - 2])
            restart = _unstuffed_header(body)
            if restart is not None:
                self.stats.framing_errors += 1   # a motor sees a new header mid-packet
                del buf[:7 + restart]
                continue
            raw = bytes(buf[:7 + length])
            del buf[:7 + length]
            try:
                packet = P.parse_packet(raw)
            except P.PacketError:
                self.stats.crc_errors += 1
                if raw[4] in self.motors:
                    self._send(P.build_status(raw[4], P.ERR_CRC), raw[4])
                continue
            self._handle(packet)

    def _advance(self) -> None:
        now = time.monotonic()
        dt = now - self._last_advance
        self._last_advance = now
        for joint in {id(j): j for j in self.joints.values()}.values():
            joint.advance(dt, self.overload_s)

    def _responsive(self, dxl_id: int) -> bool:
        motor = self.motors.get(dxl_id)
        return motor is not None and time.monotonic() >= motor.unresponsive_until

    def _send(self, packet: bytes, dxl_id: int) -> None:
        if self._fault_ids is None or dxl_id in self._fault_ids:
            if self._drop > 0:
                self._drop -= 1
                self.stats.dropped += 1
                return
            if self._corrupt > 0:
                self._corrupt -= 1
                self.stats.corrupted += 1
                packet = packet[:-1] + bytes(((packet[-1] + 1) & 0xFF,))
        delay = len(packet) * 10.0 / self.wire_baud if self.wire_baud else 0.0
        motor = self.motors.get(dxl_id)
        if motor is not None and motor.table[9]:
            self.stats.return_delay_s += motor.table[9] * RETURN_DELAY_UNIT_S
            delay += motor.table[9] * RETURN_DELAY_UNIT_S
        if delay:
            time.sleep(delay)
        try:
            os.write(self._master, packet)
            self.stats.tx_bytes += len(packet)
        except (OSError, TypeError):
            pass

    def _status(self, dxl_id: int, error: int = 0, params: bytes = b'') -> None:
        if self.motors[dxl_id].error_bits:
            error |= P.ALERT_BIT
        self._send(P.build_status(dxl_id, error, params), dxl_id)

    def _targets(self, dxl_id: int) -> list:
        """Motors acting on an instruction to `dxl_id`: itself and its Secondary_ID shadows."""
        return [m for m in self.motors.values()
                if m.dxl_id == dxl_id or dxl_id == P.BROADCAST_ID
                or (m.table[12] == dxl_id and m.table[12] != 255)]

    def _write(self, motor: EmulatedMotor, address: int, data: bytes) -> int:
        error = motor.write(address, data)
        if error:
            self.stats.rejected.append((motor.dxl_id, address, error))
        elif address < EEPROM_END:
            self.stats.eeprom_writes += 1
        return error

    def _handle(self, packet: P.Packet) -> None:
        code, dxl_id, params = packet.instruction, packet.dxl_id, packet.params
        self.stats.instructions[code] = self.stats.instructions.get(code, 0) + 1
        self._advance()
        handler = {P.PING: self._ping, P.READ: self._read, P.WRITE: self._write_one,
                   P.SYNC_WRITE: self._sync_write, P.SYNC_READ: self._sync_read,
                   P.BULK_READ: self._bulk_read, P.REBOOT: self._reboot}.get(code)
        if handler is not None:
            handler(dxl_id, params)
        elif dxl_id in self.motors and self._responsive(dxl_id):
            self._status(dxl_id, P.ERR_INSTRUCTION)

    def _ping(self, dxl_id: int, params: bytes) -> None:
        for i in sorted(self.motors) if dxl_id == P.BROADCAST_ID else [dxl_id]:
            if self._responsive(i):
                m = self.motors[i]
                self._status(i, 0, P.le_bytes(m.model.number, 2) + bytes((m.table[6],)))

    def _read(self, dxl_id: int, params: bytes) -> None:
        if self._responsive(dxl_id) and len(params) == 4:
            self._read_reply(dxl_id, P.from_le(params[:2]), P.from_le(params[2:]))

    def _write_one(self, dxl_id: int, params: bytes) -> None:
        address, data = P.from_le(params[:2]), params[2:]
        for motor in self._targets(dxl_id):
            if self._responsive(motor.dxl_id):
                error = self._write(motor, address, data)
                if motor.dxl_id == dxl_id:
                    self._status(dxl_id, error)

    def _sync_write(self, dxl_id: int, params: bytes) -> None:
        address, size = P.from_le(params[:2]), P.from_le(params[2:4])
        for offset in range(4, len(params) - size, size + 1):
            target, data = params[offset], params[offset + 1:offset + 1 + size]
            for motor in self._targets(target):
                if self._responsive(motor.dxl_id):
                    self._write(motor, address, data)

    def _sync_read(self, dxl_id: int, params: bytes) -> None:
        address, size = P.from_le(params[:2]), P.from_le(params[2:4])
        for i in params[4:]:
            if self._responsive(i):
                self._read_reply(i, address, size)

    def _bulk_read(self, dxl_id: int, params: bytes) -> None:
        for offset in range(0, len(params) - 4, 5):
            i = params[offset]
            if self._responsive(i):
                self._read_reply(i, P.from_le(params[offset + 1:offset + 3]),
                                 P.from_le(params[offset + 3:offset + 5]))

    def _reboot(self, dxl_id: int, params: bytes) -> None:
        if self._responsive(dxl_id):
            self._status(dxl_id)
            self.motors[dxl_id].reboot(self.reboot_times.get(dxl_id, self.reboot_time_s))

    def _read_reply(self, dxl_id: int, address: int, size: int) -> None:
        motor = self.motors[dxl_id]
        if address + size > len(motor.table) or size == 0:
            self._status(dxl_id, P.ERR_DATA_LENGTH)
            return
        motor.publish()
        self._status(dxl_id, 0, bytes(motor.table[address:address + size]))


def _unstuffed_header(body: bytes) -> int | None:
    """Index of an FF FF FD in `body` that is not followed by the stuffing FD, else None."""
    i = body.find(P.HEADER[:3])
    while i >= 0:
        if i + 3 >= len(body) or body[i + 3] != 0xFD:
            return i
        i = body.find(P.HEADER[:3], i + 4)
    return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Serve emulated ALOHA arm buses on ptys.')
    parser.add_argument('--arm', action='append', required=True, metavar='LINK=MODEL',
                        help='symlink path = aloha_vx300s|aloha_wx250s (repeat per arm)')
    parser.add_argument('--wire-baud', type=int, default=None,
                        help='delay status packets by their 1 Mbps (or given) wire time')
    parser.add_argument('--factory-fresh', action='store_true',
                        help='ROBOTIS factory EEPROM (Return_Delay_Time 250, no shadow setup)')
    args = parser.parse_args(argv)
    emulators = []
    for item in args.arm:
        link, _, model = item.partition('=')
        emulators.append(DynamixelEmulator.for_arm(
            model or 'aloha_vx300s', factory_fresh=args.factory_fresh, link_path=link,
            wire_baud=args.wire_baud).start())
    print('ready', flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for emu in emulators:
        emu.stop()


if __name__ == '__main__':
    main()
