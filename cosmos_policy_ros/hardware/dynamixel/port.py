"""The serial side of a Dynamixel bus: dynamixel-sdk port/packet handlers and the lean status
reader used for sync reads. ROS-free.

dynamixel-sdk polls `readPort` in a loop until a packet is complete or its packet timeout
passes, and pyserial's non-blocking read made that loop spin a full core per bus while it
waited for the motors (the 4-arm driver rate was CPU-bound). `CountingPortHandler.readPort`
blocks in select() until bytes arrive or the sdk's deadline passes, so every sdk transaction
sleeps while it waits. Sync reads skip the sdk's per-packet receive loop altogether:
`collect_status` reads whatever has arrived in one call and parses all status packets with
protocol.py (CRC, de-stuffing), reporting which IDs answered, which were garbled and which
stayed silent.

dynamixel-sdk 4.1.0 does not byte-stuff what it sends (txPacket drops addStuffing's result);
SafePacketHandler sends every instruction stuffed.
"""
import os
import select
import termios
import time
from dataclasses import dataclass, field

import serial
from dynamixel_sdk import PortHandler, Protocol2PacketHandler
from dynamixel_sdk import robotis_def as sdk

from cosmos_policy_ros.hardware.dynamixel import protocol

PORT_ERRORS = (OSError, serial.SerialException, termios.error)
# The sdk's status timeout: wire time + 2 x the FTDI latency timer it assumes (16 ms) + 2 ms.
SDK_LATENCY_MS = 16.0


class DynamixelCommError(ConnectionError):
    """A bus transaction failed (no/corrupt status packet) after all retries. `ids` names the
    motors that did not answer (or answered garbled), when the transaction knows them."""

    def __init__(self, message: str, ids=()):
        super().__init__(message)
        self.ids = tuple(ids)


class PortLostError(DynamixelCommError):
    """The serial port is missing, was unplugged, or cannot be opened."""


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
    """PortHandler that counts bytes, waits in select() instead of spinning, and turns
    OS/serial failures into PortLostError."""

    def __init__(self, port_name: str, stats: BusStats):
        super().__init__(port_name)
        self.stats = stats

    def _lost(self, exc: Exception) -> PortLostError:
        self.is_using = False
        return PortLostError(f'Dynamixel port {self.port_name}: lost ({exc}); check the USB '
                             'cable / U2D2 power, the driver reconnects when it is back')

    def read_some(self, wait_s: float, limit: int = 4096) -> bytes:
        """Up to `limit` bytes: what is there, else the first to arrive within `wait_s`."""
        try:
            ready, _, _ = select.select([self.ser.fd], [], [], max(0.0, wait_s))
            data = os.read(self.ser.fd, limit) if ready else b''
        except PORT_ERRORS as exc:
            raise self._lost(exc) from None
        if ready and not data:
            raise self._lost(OSError('readable but no data (unplugged?)'))
        self.stats.rx_bytes += len(data)
        return data

    def readPort(self, length):  # sdk override: blocks until data or the packet deadline
        return self.read_some((self.packet_timeout - self.getTimeSinceStart()) * 1e-3, length)

    def writePort(self, packet):  # sdk override
        try:
            written = self.ser.write(bytes(packet))
        except PORT_ERRORS as exc:
            raise self._lost(exc) from None
        self.stats.tx_bytes += written or 0
        return written

    def clearPort(self):  # sdk override
        try:
            self.ser.reset_input_buffer()
        except PORT_ERRORS as exc:
            raise self._lost(exc) from None

    def status_timeout_s(self, expected_bytes: int) -> float:
        return (self.tx_time_per_byte * expected_bytes + 2 * SDK_LATENCY_MS + 2.0) * 1e-3


@dataclass
class StatusBatch:
    """Status packets collected for one sync read."""
    packets: dict = field(default_factory=dict)     # id -> protocol.Packet
    garbled: list = field(default_factory=list)     # ids whose packet failed its CRC
    silent: list = field(default_factory=list)      # ids that sent nothing in time

    @property
    def complete(self) -> bool:
        return not self.garbled and not self.silent


def collect_status(port: CountingPortHandler, ids, timeout_s: float,
                   length: int | None = None) -> StatusBatch:
    """Read and parse status packets until every id has answered or `timeout_s` passes. With
    `length`, a status packet of another size (a late answer to an earlier instruction) is
    skipped."""
    ids = list(ids)
    batch, wanted, buf = StatusBatch(), set(ids), bytearray()
    deadline = time.monotonic() + timeout_s
    while wanted - set(batch.garbled):
        chunk = port.read_some(deadline - time.monotonic())
        if not chunk:
            break
        buf += chunk
        _parse_into(buf, wanted, batch, length)
    batch.silent = [i for i in ids if i in wanted and i not in batch.garbled]
    return batch


def _parse_into(buf: bytearray, wanted: set, batch: StatusBatch, length: int | None) -> None:
    while True:
        start = buf.find(protocol.HEADER)
        if start < 0:
            del buf[:max(0, len(buf) - 3)]
            return
        del buf[:start]
        if len(buf) < 7:
            return
        size = buf[5] | (buf[6] << 8)
        if not 3 <= size <= 1024:
            del buf[:1]                  # not a real header (noise): look further
            continue
        total = 7 + size
        if len(buf) < total:
            return
        raw = bytes(buf[:total])
        del buf[:total]
        try:
            packet = protocol.parse_packet(raw)
        except protocol.PacketError:
            if raw[4] in wanted and raw[4] not in batch.garbled:
                batch.garbled.append(raw[4])
            continue
        if packet.instruction != protocol.STATUS or packet.dxl_id not in wanted:
            continue
        sized = length is None or len(packet.params) == 1 + length
        refusal = len(packet.params) == 1 and packet.params[0] & 0x7F    # instruction error
        if not (sized or refusal):
            continue                     # a late answer to an earlier instruction
        wanted.discard(packet.dxl_id)
        batch.packets[packet.dxl_id] = packet
        if packet.dxl_id in batch.garbled:
            batch.garbled.remove(packet.dxl_id)
