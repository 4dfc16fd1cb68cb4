"""A Dynamixel Protocol 2.0 bus emulated on a pseudo-terminal, for tests and benchmarks.

    with DynamixelEmulator.for_arm('aloha_vx300s') as emu:   # or DynamixelEmulator({id: model})
        bus = DynamixelBus(emu.port_path); ...               # any Protocol 2.0 client works
        emu.drop_status(2); emu.corrupt_status(1)            # lose / garble next status packets
        emu.set_hardware_error(9, 0x20)                      # overload: torque off, ALERT bit
        emu.vanish(); emu.restore()                          # unplug / replug the port
        emu.register(9, 'Current_Limit'); emu.motors[9].goal

`port_path` is a stable symlink (like a udev name) to the pty slave; `vanish` closes the pty so
an open client gets EIO, and `restore` makes a new pty behind the same symlink.

The emulator answers ping, read, write, sync read, sync write, bulk read and reboot. It
de-stuffs instruction bodies and treats an unstuffed FF FF FD inside a body as a new header,
as a motor does (so dynamixel-sdk 4.1.0's unstuffed packets are misframed), checks CRCs, and
stuffs its status packets. Each motor has a control table (tables.py addresses), EEPROM
writes are refused while torque is on (access error), Secondary_ID shadows act on writes to
their primary without answering, and a motor model moves the position toward the goal at the
profile/velocity limit, with present current ~ position error (saturating at Current_Limit in
current-based position mode, e.g. against `obstruct`) and temperature drifting with current.
Wire time is not modelled unless `wire_baud` is given (then each status packet is delayed by
bytes * 10 / baud); benchmarks report bytes per cycle so the 1 Mbps time can be computed.
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
from cosmos_policy_ros.hardware.dynamixel.tables import (CENTER_TICK, MODELS, MODELS_BY_NUMBER,
                                                         TICKS_PER_REV, VELOCITY_UNIT_RPM,
                                                         MotorModel, OperatingMode)

_READ_ONLY = set(range(0, 7)) | {70} | set(range(122, 147))
_EEPROM_END = 64
_TABLE_SIZE = 256
_ERROR_BITS_REG = 70


@dataclass
class EmulatedMotor:
    dxl_id: int
    model: MotorModel
    table: bytearray = field(default_factory=lambda: bytearray(_TABLE_SIZE))
    position: float = float(CENTER_TICK)
    velocity: float = 0.0
    temperature: float = 30.0
    current: float = 0.0
    obstacle: float | None = None      # a position the motor cannot pass (grasped object)
    fault_persistent: bool = False     # a reboot clears the error only after clear_fault_cause
    unresponsive_until: float = 0.0

    def __post_init__(self):
        self.reset_ram(initial=True)

    def reg(self, name: str):
        return self.model.register(name)

    def get(self, name: str) -> int:
        reg = self.reg(name)
        return P.from_le(self.table[reg.address:reg.address + reg.size], signed=reg.signed)

    def set(self, name: str, value: int) -> None:
        reg = self.reg(name)
        self.table[reg.address:reg.address + reg.size] = P.le_bytes(int(value), reg.size)

    def reset_ram(self, initial: bool = False) -> None:
        if initial:
            self.set('Model_Number', self.model.number)
            self.set('Firmware_Version', 46)
            self.set('ID', self.dxl_id)
            self.set('Baud_Rate', 3)
            self.set('Return_Delay_Time', 0)
            self.set('Operating_Mode', OperatingMode.POSITION)
            self.set('Secondary_ID', 255)
            if self.model.has_current:
                self.set('Current_Limit', self.model.default_current_limit)
            self.set('Velocity_Limit', 265)
            self.set('Max_Position_Limit', TICKS_PER_REV - 1)
            self.set('Min_Position_Limit', 0)
        self.set('Torque_Enable', 0)
        self.set('Status_Return_Level', 2)
        self.set('Position_P_Gain', 800)
        self.set('Profile_Velocity', 0)
        self.set('Profile_Acceleration', 0)
        self.set('Goal_Position', int(round(self.position)))
        self.velocity = 0.0
        self._publish()

    @property
    def goal(self) -> int:
        return self.get('Goal_Position')

    @property
    def error_bits(self) -> int:
        return self.table[_ERROR_BITS_REG]

    def advance(self, dt: float) -> None:
        """Move toward the goal at the profile/velocity limit; update current, temperature."""
        torque = self.table[64] and not self.error_bits
        error = 0.0
        if torque and dt > 0:
            limit = self.get('Profile_Velocity') or self.get('Velocity_Limit') or 265
            max_step = limit * VELOCITY_UNIT_RPM / 60.0 * TICKS_PER_REV * dt
            target = float(self.goal)
            if self.obstacle is not None and (min(self.position, target) <= self.obstacle
                                              <= max(self.position, target)):
                target = self.obstacle          # the path to the goal crosses the obstacle
            step = max(-max_step, min(max_step, target - self.position))
            self.position += step
            self.velocity = step / dt
            error = self.goal - self.position
        elif dt > 0:
            self.velocity = 0.0
        current = 2.0 * error + 0.02 * self.velocity
        if self.model.has_current:
            cap = self.get('Current_Limit')
            if self.get('Operating_Mode') == OperatingMode.CURRENT_BASED_POSITION:
                current = max(-cap, min(cap, current))
            self.current = current
        else:
            self.current = max(-1000.0, min(1000.0, current))   # Present Load, 0.1 %
        if dt > 0:
            ambient = 30.0 + abs(self.current) * 0.02
            self.temperature += (ambient - self.temperature) * min(1.0, dt / 30.0)
        self._publish()

    def _publish(self) -> None:
        self.set('Present_Position', int(round(self.position)))
        self.set('Present_Velocity', int(round(self.velocity / (
            VELOCITY_UNIT_RPM / 60.0 * TICKS_PER_REV))))
        self.set('Present_Current', int(round(self.current)))
        self.set('Present_Input_Voltage', 120)
        self.set('Present_Temperature', int(round(self.temperature)))
        self.table[122] = int(abs(self.goal - self.position) > 2)


@dataclass
class EmulatorStats:
    instructions: dict = field(default_factory=dict)   # instruction code -> count
    crc_errors: int = 0
    framing_errors: int = 0       # unstuffed FF FF FD inside a body
    dropped: int = 0
    corrupted: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0


class DynamixelEmulator:
    def __init__(self, motors: dict, secondary_ids: dict | None = None,
                 link_path: str | None = None, wire_baud: int | None = None,
                 reboot_time_s: float = 0.02):
        """motors: {id: model name or number}; secondary_ids: {shadow id: primary id}."""
        self.motors = {}
        for dxl_id, model in motors.items():
            model = MODELS_BY_NUMBER[model] if isinstance(model, int) else MODELS[model]
            self.motors[int(dxl_id)] = EmulatedMotor(int(dxl_id), model)
        for shadow, primary in (secondary_ids or {}).items():
            self.motors[shadow].set('Secondary_ID', primary)
        self._tmp = None
        if link_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='dxl_emu_')
            link_path = os.path.join(self._tmp.name, 'ttyDXL')
        self.port_path = str(link_path)
        self.wire_baud = wire_baud
        self.reboot_time_s = reboot_time_s
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
    def for_arm(cls, arm_model: str = 'aloha_vx300s', **kwargs) -> 'DynamixelEmulator':
        """The nine motors of an ALOHA arm with default IDs (shadows 3, 5 -> 2, 4)."""
        from cosmos_policy_ros.hardware.arm_config import ARM_MODELS, DEFAULT_IDS, SHADOWS
        model = ARM_MODELS[arm_model]
        motors = {DEFAULT_IDS[slot]: name for slot, name in model.motors.items()}
        shadows = {DEFAULT_IDS[s]: DEFAULT_IDS[p] for s, p in SHADOWS.items()}
        return cls(motors, shadows, **kwargs)

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

    # --- fault injection --------------------------------------------------------------
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
            motor.table[_ERROR_BITS_REG] = bits
            motor.table[64] = 0
            motor.fault_persistent = persistent

    def clear_fault_cause(self, dxl_id: int) -> None:
        with self._lock:
            self.motors[dxl_id].fault_persistent = False

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
            return self.motors[dxl_id].get(name)

    def set_position(self, dxl_id: int, ticks: int) -> None:
        """Move a motor by hand (a leader arm being teleoperated)."""
        with self._lock:
            motor = self.motors[dxl_id]
            motor.position = float(ticks)
            if not motor.table[64]:
                motor.set('Goal_Position', ticks)
            motor.advance(0.0)

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
                elif self._buffer and now - self._last_rx > 0.1:
                    self._buffer.clear()        # a motor's inter-byte timeout

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
        for motor in self.motors.values():
            motor.advance(dt)

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
        if self.wire_baud:
            time.sleep(len(packet) * 10.0 / self.wire_baud)
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

    def _handle(self, packet: P.Packet) -> None:
        code, dxl_id, params = packet.instruction, packet.dxl_id, packet.params
        self.stats.instructions[code] = self.stats.instructions.get(code, 0) + 1
        self._advance()
        if code == P.PING:
            ids = sorted(self.motors) if dxl_id == P.BROADCAST_ID else [dxl_id]
            for i in ids:
                if self._responsive(i):
                    m = self.motors[i]
                    self._status(i, 0, P.le_bytes(m.model.number, 2) + bytes((m.table[6],)))
        elif code == P.READ:
            if self._responsive(dxl_id) and len(params) == 4:
                address, size = P.from_le(params[:2]), P.from_le(params[2:])
                self._read_reply(dxl_id, address, size)
        elif code == P.WRITE:
            address, data = P.from_le(params[:2]), params[2:]
            for motor in self._targets(dxl_id):
                error = self._write(motor, address, data)
                if motor.dxl_id == dxl_id and self._responsive(dxl_id):
                    self._status(dxl_id, error)
        elif code == P.SYNC_WRITE:
            address, size = P.from_le(params[:2]), P.from_le(params[2:4])
            for offset in range(4, len(params) - size, size + 1):
                target, data = params[offset], params[offset + 1:offset + 1 + size]
                for motor in self._targets(target):
                    self._write(motor, address, data)
        elif code == P.SYNC_READ:
            address, size = P.from_le(params[:2]), P.from_le(params[2:4])
            for i in params[4:]:
                if self._responsive(i):
                    self._read_reply(i, address, size)
        elif code == P.BULK_READ:
            for offset in range(0, len(params) - 4, 5):
                i = params[offset]
                address = P.from_le(params[offset + 1:offset + 3])
                size = P.from_le(params[offset + 3:offset + 5])
                if self._responsive(i):
                    self._read_reply(i, address, size)
        elif code == P.REBOOT:
            if self._responsive(dxl_id):
                self._status(dxl_id)
                motor = self.motors[dxl_id]
                if not motor.fault_persistent:
                    motor.table[_ERROR_BITS_REG] = 0
                motor.reset_ram()
                motor.unresponsive_until = time.monotonic() + self.reboot_time_s
        elif dxl_id in self.motors and self._responsive(dxl_id):
            self._status(dxl_id, P.ERR_INSTRUCTION)

    def _read_reply(self, dxl_id: int, address: int, size: int) -> None:
        motor = self.motors[dxl_id]
        if address + size > _TABLE_SIZE or size == 0:
            self._status(dxl_id, P.ERR_DATA_LENGTH)
            return
        self._status(dxl_id, 0, bytes(motor.table[address:address + size]))

    def _write(self, motor: EmulatedMotor, address: int, data: bytes) -> int:
        """Apply a write as the motor would; returns the status error number."""
        registers = {r.address: r for r in motor.model.registers().values()}
        reg = registers.get(address)
        if reg is None or len(data) != reg.size or address in _READ_ONLY:
            return P.ERR_ACCESS if reg is None or address in _READ_ONLY else P.ERR_DATA_LENGTH
        if address < _EEPROM_END and motor.table[64]:
            return P.ERR_ACCESS
        value = P.from_le(data, signed=reg.signed)
        if reg.name == 'Operating_Mode' and value not in motor.model.modes:
            return P.ERR_DATA_RANGE
        if reg.name == 'Torque_Enable' and value and motor.error_bits:
            return P.ERR_RESULT_FAIL           # torque stays off until a reboot
        if reg.name == 'Current_Limit' and not 0 <= value <= motor.model.default_current_limit:
            return P.ERR_DATA_RANGE
        if reg.name == 'Goal_Position' and motor.get('Operating_Mode') == OperatingMode.POSITION:
            if not motor.get('Min_Position_Limit') <= value <= motor.get('Max_Position_Limit'):
                return P.ERR_DATA_LIMIT
        motor.table[address:address + reg.size] = data
        return 0


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
    args = parser.parse_args(argv)
    emulators = []
    for item in args.arm:
        link, _, model = item.partition('=')
        emulators.append(DynamixelEmulator.for_arm(model or 'aloha_vx300s', link_path=link,
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
