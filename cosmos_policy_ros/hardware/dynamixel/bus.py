"""One Dynamixel Protocol 2.0 bus (one U2D2 port) on dynamixel-sdk. ROS-free.

Public API (kept stable; used by hardware.arm, the calibrate tool and the benchmarks):

    bus = DynamixelBus(port='/dev/ttyDXL_follower_left', baudrate=1_000_000, num_retry=2)
    bus.connect()                                  # PortLostError if the port is missing
    bus.ping(dxl_id) -> int                        # model number; DynamixelCommError names id+port
    bus.read(dxl_id, 'Present_Position') -> int    # any Register name of tables.py (signed aware)
    bus.write(dxl_id, 'Operating_Mode', 5, verify=True)   # verify reads back, RuntimeError if not
    bus.sync_read([1, 2, ...], address, length) -> {id: (bytes, error byte)}   # one transaction
    bus.sync_read_state([1, 2, ...]) -> {id: MotorState}  # 126..146 + ALERT bit
    bus.sync_write('Goal_Position', {1: 2048, ...})        # one transaction, no status
    bus.set_torque(ids, enabled); with bus.torque_disabled(ids): ...   # EEPROM writes
    bus.reboot(dxl_id); bus.wait_for_motors(ids, timeout_s); bus.close(); bus.stats (BusStats)

Errors: DynamixelCommError (a ConnectionError; `.ids` = the motors that did not answer) when a
transaction fails after `num_retry` retries, PortLostError (a DynamixelCommError) when the port
is missing or vanished, MotorInstructionError (a RuntimeError) when a motor rejects an
instruction, and MotorHardwareError (a RuntimeError) raised by callers that find ALERT bits set
(`MotorState.alert`; the cause is in Hardware_Error_Status, read with `read`).

Sync reads go through port.collect_status (one blocking read, all status packets parsed at
once, silent motors named); everything else through the sdk, whose receive loop now sleeps in
select() instead of spinning (port.py).
"""
import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dynamixel_sdk import robotis_def as sdk

from cosmos_policy_ros.hardware.dynamixel import protocol
from cosmos_policy_ros.hardware.dynamixel.port import (
    PORT_ERRORS,
    BusStats,
    CountingPortHandler,
    DynamixelCommError,
    PortLostError,
    SafePacketHandler,
    collect_status,
)
from cosmos_policy_ros.hardware.dynamixel.tables import (
    MODELS,
    STATE_BLOCK_LENGTH,
    STATE_BLOCK_START,
    Register,
)

__all__ = ['BusStats', 'DynamixelBus', 'DynamixelCommError', 'MotorHardwareError',
           'MotorInstructionError', 'MotorState', 'PortLostError', 'register']

_REGISTERS = MODELS['XM430-W350'].registers()   # addresses are shared by all four models


class MotorInstructionError(RuntimeError):
    """A motor answered with an instruction error (e.g. EEPROM write with torque on)."""


class MotorHardwareError(RuntimeError):
    """One or more motors report Hardware_Error_Status bits (torque is off on those motors)."""

    def __init__(self, message: str, errors: dict):
        super().__init__(message)
        self.errors = dict(errors)      # id -> Hardware_Error_Status bits


_INSTRUCTION_ERRORS = {1: 'result fail', 2: 'instruction error', 3: 'CRC error',
                       4: 'data range error', 5: 'data length error',
                       6: 'data limit error (outside the limit registers)',
                       7: 'access error (EEPROM write needs torque off, or read-only address)'}


@dataclass(frozen=True)
class MotorState:
    position: int        # ticks
    velocity: int        # 0.229 rpm units
    current: int         # Present_Current units (Present Load 0.1 % on XL430/XC430)
    voltage: int         # 0.1 V
    temperature: int     # deg C
    alert: bool          # ALERT bit: Hardware_Error_Status != 0


def register(name: str) -> Register:
    if name not in _REGISTERS:
        raise KeyError(f'unknown Dynamixel register {name!r}; known: {sorted(_REGISTERS)}')
    return _REGISTERS[name]


def _id_list(ids) -> str:
    return ', '.join(str(i) for i in ids)


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
            except PORT_ERRORS as exc:
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

    def _transact(self, attempt, what: str, tries: int | None = None):
        """Run attempt(port) -> (result, value) with retries; returns value or raises. On a
        failure `value` may be (detail text, ids) naming the motors at fault."""
        tries = self.num_retry + 1 if tries is None else tries
        with self._lock:
            port = self._require_port()
            self.stats.transactions += 1
            result, value = sdk.COMM_SUCCESS, None
            for attempt_no in range(tries):
                if attempt_no:
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
            detail, ids = value if isinstance(value, tuple) and len(value) == 2 and \
                isinstance(value[0], str) else (self._handler.getTxRxResult(result), ())
            raise DynamixelCommError(f'{self}: {what} failed after {tries} tries: {detail}', ids)

    def _check_error(self, dxl_id: int, error: int, what: str) -> None:
        code = error & 0x7F
        if code:
            raise MotorInstructionError(f'{self}: motor {dxl_id} rejected {what}: '
                                        f'{_INSTRUCTION_ERRORS.get(code, code)}')

    def ping(self, dxl_id: int, tries: int | None = None) -> int:
        def attempt(port):
            model, result, _ = self._handler.ping(port, dxl_id)
            return result, model
        try:
            return self._transact(attempt, f'ping of motor {dxl_id}', tries)
        except DynamixelCommError as exc:
            if isinstance(exc, PortLostError):
                raise
            raise DynamixelCommError(
                f'{self}: motor ID {dxl_id} does not answer on {self.port}; check the ID in the '
                'calibration `ids`, the motor power and cabling, and the baud rate '
                f'({self.baudrate})', (dxl_id,)) from None

    def read(self, dxl_id: int, name: str) -> int:
        reg = register(name)

        def attempt(port):
            data, result, error = self._handler.readTxRx(port, dxl_id, reg.address, reg.size)
            return result, (data, error) if result == sdk.COMM_SUCCESS else None
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

    def sync_read(self, ids, address: int, length: int) -> dict:
        """{id: (data bytes, status error byte)} of every id in one sync read. A motor that
        stays silent (or garbled) through all retries is named in the DynamixelCommError."""
        ids = list(ids)
        params = protocol.le_bytes(address, 2) + protocol.le_bytes(length, 2) + bytes(ids)
        packet = protocol.build_packet(protocol.BROADCAST_ID, protocol.SYNC_READ, params)

        def attempt(port):
            port.clearPort()
            if port.writePort(packet) != len(packet):
                return sdk.COMM_TX_FAIL, None
            batch = collect_status(port, ids, port.status_timeout_s(len(ids) * (11 + length)),
                                   length)
            if batch.complete:
                return sdk.COMM_SUCCESS, {i: (p.params[1:1 + length], p.params[0])
                                          for i, p in batch.packets.items()}
            answered = [i for i in ids if i in batch.packets]
            parts = [f'motor ID {_id_list(batch.silent)} did not answer'] if batch.silent else []
            if batch.garbled:
                parts.append(f'motor ID {_id_list(batch.garbled)} answered garbled (CRC)')
            detail = '; '.join(parts) + (f' (IDs {_id_list(answered)} did)' if answered else
                                         ' (no motor answered: power, cable or baud rate?)')
            if batch.garbled and batch.silent:
                self.stats.timeouts += 1       # both in one attempt: _transact counts corrupt
            result = sdk.COMM_RX_CORRUPT if batch.garbled else sdk.COMM_RX_TIMEOUT
            return result, (detail, tuple(batch.silent + batch.garbled))
        replies = self._transact(attempt, f'sync read of {length} bytes at {address}')
        for dxl_id, (_, error) in replies.items():
            self._check_error(dxl_id, error, f'sync read at {address}')
        return replies

    def sync_read_state(self, ids) -> dict:
        """Present current..temperature of every id in one sync read, with each ALERT bit."""
        replies = self.sync_read(ids, STATE_BLOCK_START, STATE_BLOCK_LENGTH)
        return {i: _decode_state(data, error) for i, (data, error) in replies.items()}

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

    def reboot(self, dxl_id: int) -> None:
        """Send REBOOT; the motor answers, then restarts (RAM reset, torque off) and is silent
        for a while: call wait_for_motors before using it."""
        def attempt(port):
            result, error = self._handler.reboot(port, dxl_id)
            return result, error
        self._transact(attempt, f'reboot of motor {dxl_id}')

    def wait_for_motors(self, ids, timeout_s: float = 2.0, first_wait_s: float = 0.05) -> float:
        """Ping each id until it answers, backing off (first_wait_s doubling, at most 0.2 s)
        until `timeout_s` (ROBOTIS tools wait 1-2 s after a reboot). Returns the seconds
        waited; DynamixelCommError names the motors still silent."""
        start = time.monotonic()
        pending, wait = list(ids), first_wait_s
        while True:
            time.sleep(min(wait, max(0.0, start + timeout_s - time.monotonic())))
            for dxl_id in list(pending):
                try:
                    self.ping(dxl_id, tries=1)
                    pending.remove(dxl_id)
                except PortLostError:
                    raise
                except DynamixelCommError:
                    pass                       # still restarting
            if not pending:
                return time.monotonic() - start
            if time.monotonic() - start >= timeout_s:
                raise DynamixelCommError(
                    f'{self}: motor ID {_id_list(pending)} still silent {timeout_s:.1f} s after '
                    'its reboot; check its power and cable, then reboot again', pending)
            wait = min(2 * wait, 0.2)


def _decode_state(block: bytes, error: int) -> MotorState:
    def field_(address, size, signed=True):
        offset = address - STATE_BLOCK_START
        return protocol.from_le(block[offset:offset + size], signed=signed)
    return MotorState(position=field_(132, 4), velocity=field_(128, 4), current=field_(126, 2),
                      voltage=field_(144, 2, False), temperature=field_(146, 1, False),
                      alert=bool(error & protocol.ALERT_BIT))
