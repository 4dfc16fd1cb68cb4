"""One Dynamixel Protocol 2.0 bus (one U2D2 port) on dynamixel-sdk. ROS-free.

Public API (kept stable; used by hardware.arm, the calibrate tool and the benchmarks):

    bus = DynamixelBus(port='/dev/ttyDXL_follower_left', baudrate=1_000_000, num_retry=2)
    bus.connect()                                  # PortLostError if the port is missing
    bus.ping(dxl_id) -> int                        # model number; DynamixelCommError names id+port
    bus.read(dxl_id, 'Present_Position') -> int    # any Register name of tables.py (signed aware)
    bus.write(dxl_id, 'Operating_Mode', 5, verify=True)   # verify reads back, RuntimeError if not
    bus.sync_read_state([1, 2, ...]) -> {id: MotorState}  # one transaction, 126..146 + ALERT bit
    bus.sync_write('Goal_Position', {1: 2048, ...})        # one transaction, no status
    bus.set_torque(ids, enabled); with bus.torque_disabled(ids): ...   # EEPROM writes
    bus.reboot(dxl_id); bus.close(); bus.stats (BusStats)

Errors: DynamixelCommError (a ConnectionError) when a transaction fails after `num_retry`
retries, PortLostError (a DynamixelCommError) when the port is missing or vanished,
MotorInstructionError (a RuntimeError) when a motor rejects an instruction, and
MotorHardwareError (a RuntimeError) raised by callers that find ALERT bits set
(`MotorState.alert`; the cause is in Hardware_Error_Status, read with `read`).

dynamixel-sdk 4.1.0 does not byte-stuff what it sends (txPacket drops addStuffing's result);
SafePacketHandler sends every instruction stuffed, so values whose bytes contain FF FF FD
(negative goals in extended position, velocity or current modes) reach the motor intact.
"""
import contextlib
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import serial
from dynamixel_sdk import PortHandler, Protocol2PacketHandler
from dynamixel_sdk import robotis_def as sdk

from cosmos_policy_ros.hardware.dynamixel import protocol
from cosmos_policy_ros.hardware.dynamixel.tables import (MODELS, STATE_BLOCK_LENGTH,
                                                         STATE_BLOCK_START, Register)

_PORT_ERRORS = (OSError, serial.SerialException, termios.error)
_REGISTERS = MODELS['XM430-W350'].registers()   # addresses are shared by all four models


class DynamixelCommError(ConnectionError):
    """A bus transaction failed (no/corrupt status packet) after all retries."""


class PortLostError(DynamixelCommError):
    """The serial port is missing, was unplugged, or cannot be opened."""


class MotorInstructionError(RuntimeError):
    """A motor answered with an instruction error (e.g. EEPROM write with torque on)."""


class MotorHardwareError(RuntimeError):
    """One or more motors report Hardware_Error_Status bits (torque is off on those motors)."""

    def __init__(self, message: str, errors: dict):
        super().__init__(message)
        self.errors = dict(errors)      # id -> Hardware_Error_Status bits


_INSTRUCTION_ERRORS = {1: 'result fail', 2: 'instruction error', 3: 'CRC error',
                       4: 'data range error', 5: 'data length error', 6: 'data limit error',
                       7: 'access error (EEPROM write needs torque off, or read-only address)'}


@dataclass
class BusStats:
    transactions: int = 0
    retries: int = 0          # failed attempts that were retried
    timeouts: int = 0         # lost status packets (no answer)
    corrupt: int = 0          # status packets with bad CRC / framing
    failures: int = 0         # transactions that failed after all retries
    stuffed_packets: int = 0  # instructions that needed byte stuffing
    tx_bytes: int = 0
    rx_bytes: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MotorState:
    position: int        # ticks
    velocity: int        # 0.229 rpm units
    current: int         # Present_Current units (Present Load 0.1 % on XL430/XC430)
    voltage: int         # 0.1 V
    temperature: int     # deg C
    alert: bool          # ALERT bit: Hardware_Error_Status != 0


class SafePacketHandler(Protocol2PacketHandler):
    """Protocol2PacketHandler whose txPacket sends the stuffed packet (sdk 4.1.0 drops it)."""

    def __init__(self, stats: BusStats):
        self.stats = stats

    def txPacket(self, port, txpacket):  # sdk override
        if port.is_using:
            return sdk.COMM_PORT_BUSY
        port.is_using = True
        length = txpacket[5] | (txpacket[6] << 8)
        body = bytes(txpacket[7:7 + length - 2])
        if protocol.has_header_pattern(body):
            self.stats.stuffed_packets += 1
        packet = protocol.build_packet(txpacket[4], body[0], body[1:])
        if len(packet) > 1024:
            port.is_using = False
            return sdk.COMM_TX_ERROR
        port.clearPort()
        if port.writePort(packet) != len(packet):
            port.is_using = False
            return sdk.COMM_TX_FAIL
        return sdk.COMM_SUCCESS


class CountingPortHandler(PortHandler):
    """PortHandler that counts bytes and turns OS/serial failures into PortLostError."""

    def __init__(self, port_name: str, stats: BusStats):
        super().__init__(port_name)
        self.stats = stats

    def _lost(self, exc: Exception) -> PortLostError:
        self.is_using = False
        return PortLostError(f'Dynamixel port {self.port_name}: lost ({exc}); check the USB '
                             'cable / U2D2 power, the driver reconnects when it is back')

    def readPort(self, length):  # sdk override
        try:
            data = self.ser.read(length)
        except _PORT_ERRORS as exc:
            raise self._lost(exc) from None
        self.stats.rx_bytes += len(data)
        return data

    def writePort(self, packet):  # sdk override
        try:
            written = self.ser.write(bytes(packet))
        except _PORT_ERRORS as exc:
            raise self._lost(exc) from None
        self.stats.tx_bytes += written or 0
        return written

    def clearPort(self):  # sdk override
        try:
            self.ser.reset_input_buffer()
        except _PORT_ERRORS as exc:
            raise self._lost(exc) from None


def register(name: str) -> Register:
    if name not in _REGISTERS:
        raise KeyError(f'unknown Dynamixel register {name!r}; known: {sorted(_REGISTERS)}')
    return _REGISTERS[name]


class DynamixelBus:
    def __init__(self, port: str, baudrate: int = 1_000_000, num_retry: int = 2,
                 retry_delay_s: float = 0.002):
        if num_retry < 0:
            raise ValueError(f'num_retry must be >= 0, got {num_retry}')
        self.port = str(port)
        self.baudrate = int(baudrate)
        self.num_retry = int(num_retry)
        self.retry_delay_s = retry_delay_s
        self.stats = BusStats()
        self._handler = SafePacketHandler(self.stats)
        self._port: CountingPortHandler | None = None
        self._lock = threading.RLock()   # one transaction at a time (timer + service threads)

    def __str__(self) -> str:
        return f'DynamixelBus({self.port})'

    @property
    def is_connected(self) -> bool:
        return self._port is not None and self._port.is_open

    def connect(self) -> None:
        with self._lock:
            self.close()
            if not Path(self.port).exists():
                raise PortLostError(
                    f'{self}: port {self.port} does not exist; plug in the U2D2, install the '
                    'udev rules (cosmos-policy-ros udev-rules) or fix `port` in the calibration')
            port = CountingPortHandler(self.port, self.stats)
            try:
                opened = port.openPort() and port.setBaudRate(self.baudrate)
            except _PORT_ERRORS as exc:
                raise PortLostError(f'{self}: cannot open {self.port}: {exc}; check permissions '
                                    '(dialout group) and that no other driver holds it') from None
            if not opened:
                raise PortLostError(f'{self}: cannot open {self.port} at {self.baudrate} baud')
            self._port = port

    def close(self) -> None:
        with self._lock:
            if self._port is not None:
                with contextlib.suppress(Exception):
                    self._port.closePort()
                self._port = None

    def _require_port(self) -> CountingPortHandler:
        if self._port is None:
            raise PortLostError(f'{self}: not connected; call connect()')
        return self._port

    def _transact(self, attempt, what: str):
        """Run attempt() -> (result, value) with retries; returns value or raises."""
        with self._lock:
            port = self._require_port()
            self.stats.transactions += 1
            result = sdk.COMM_SUCCESS
            for tries in range(self.num_retry + 1):
                if tries:
                    self.stats.retries += 1
                    time.sleep(self.retry_delay_s)   # let a late answer land, then drop it
                    port.clearPort()
                try:
                    result, value = attempt(port)
                except PortLostError:
                    self.close()
                    raise
                if result == sdk.COMM_SUCCESS:
                    return value
                if result == sdk.COMM_RX_TIMEOUT:
                    self.stats.timeouts += 1
                elif result == sdk.COMM_RX_CORRUPT:
                    self.stats.corrupt += 1
            self.stats.failures += 1
            raise DynamixelCommError(f'{self}: {what} failed after {self.num_retry + 1} tries: '
                                     f'{self._handler.getTxRxResult(result)}')

    def _check_error(self, dxl_id: int, error: int, what: str) -> None:
        code = error & 0x7F
        if code:
            raise MotorInstructionError(f'{self}: motor {dxl_id} rejected {what}: '
                                        f'{_INSTRUCTION_ERRORS.get(code, code)}')

    def ping(self, dxl_id: int) -> int:
        def attempt(port):
            model, result, _ = self._handler.ping(port, dxl_id)
            return result, model
        try:
            return self._transact(attempt, f'ping of motor {dxl_id}')
        except DynamixelCommError as exc:
            if isinstance(exc, PortLostError):
                raise
            raise DynamixelCommError(
                f'{self}: motor ID {dxl_id} does not answer on {self.port}; check the ID in the '
                'calibration `ids`, the motor power and cabling, and the baud rate '
                f'({self.baudrate})') from None

    def read(self, dxl_id: int, name: str) -> int:
        reg = register(name)

        def attempt(port):
            data, result, error = self._handler.readTxRx(port, dxl_id, reg.address, reg.size)
            return result, (data, error)
        data, error = self._transact(attempt, f'read of {name} from motor {dxl_id}')
        self._check_error(dxl_id, error, f'read of {name}')
        return protocol.from_le(data[:reg.size], signed=reg.signed)

    def write(self, dxl_id: int, name: str, value: int, verify: bool = False) -> None:
        reg = register(name)
        payload = list(protocol.le_bytes(int(value), reg.size))

        def attempt(port):
            result, error = self._handler.writeTxRx(port, dxl_id, reg.address, reg.size, payload)
            return result, error
        error = self._transact(attempt, f'write of {name}={value} to motor {dxl_id}')
        self._check_error(dxl_id, error, f'write of {name}={value}')
        if verify:
            back = self.read(dxl_id, name)
            if back != int(value):
                raise RuntimeError(f'{self}: motor {dxl_id} {name} reads back {back} after '
                                   f'writing {value}; the write did not take effect (EEPROM '
                                   'registers need torque off)')

    def sync_read_state(self, ids) -> dict:
        """Present current..temperature of every id in one sync read, with each ALERT bit."""
        ids = list(ids)

        def attempt(port):
            result = self._handler.syncReadTx(port, STATE_BLOCK_START, STATE_BLOCK_LENGTH, ids,
                                              len(ids), False)
            if result != sdk.COMM_SUCCESS:
                port.is_using = False
                return result, None
            states = {}
            for dxl_id in ids:
                data, result, error = self._handler.readRx(port, dxl_id, STATE_BLOCK_LENGTH)
                if result != sdk.COMM_SUCCESS or len(data) < STATE_BLOCK_LENGTH:
                    return result or sdk.COMM_RX_CORRUPT, None
                states[dxl_id] = _decode_state(bytes(data), error)
            return sdk.COMM_SUCCESS, states
        return self._transact(attempt, f'sync read of motors {ids}')

    def sync_write(self, name: str, values: dict) -> None:
        reg = register(name)
        params = []
        for dxl_id, value in values.items():
            params += [dxl_id, *protocol.le_bytes(int(value), reg.size)]

        def attempt(port):
            result = self._handler.syncWriteTxOnly(port, reg.address, reg.size, params,
                                                   len(params))
            return result, None
        self._transact(attempt, f'sync write of {name} to motors {list(values)}')

    def set_torque(self, ids, enabled: bool) -> None:
        for dxl_id in ids:
            self.write(dxl_id, 'Torque_Enable', int(bool(enabled)))

    @contextlib.contextmanager
    def torque_disabled(self, ids):
        """Torque off for EEPROM writes; restores the previous torque state of each id."""
        ids = list(ids)
        before = {dxl_id: self.read(dxl_id, 'Torque_Enable') for dxl_id in ids}
        self.set_torque(ids, False)
        try:
            yield
        finally:
            self.set_torque([i for i in ids if before[i]], True)

    def reboot(self, dxl_id: int, settle_s: float = 0.1) -> None:
        def attempt(port):
            result, error = self._handler.reboot(port, dxl_id)
            return result, error
        self._transact(attempt, f'reboot of motor {dxl_id}')
        time.sleep(settle_s)   # the motor does not answer while it restarts
        self.ping(dxl_id)


def _decode_state(block: bytes, error: int) -> MotorState:
    def field_(address, size, signed=True):
        offset = address - STATE_BLOCK_START
        return protocol.from_le(block[offset:offset + size], signed=signed)
    return MotorState(position=field_(132, 4), velocity=field_(128, 4), current=field_(126, 2),
                      voltage=field_(144, 2, False), temperature=field_(146, 1, False),
                      alert=bool(error & protocol.ALERT_BIT))
