"""Dynamixel Protocol 2.0 framing: CRC-16, byte stuffing, packet build/parse. ROS-free.

Shared by the bus driver's stuffing-safe packet handler (dynamixel-sdk 4.1.0's `txPacket`
drops `addStuffing`'s result, so a body containing FF FF FD goes out unstuffed) and by the bus
emulator, which parses instructions as a motor does.

Packet: FF FF FD 00 | ID | LEN_L LEN_H | INST | params... | CRC_L CRC_H, where LEN counts
INST + params + CRC after stuffing and the CRC covers every byte before it (stuffed).
"""
from dataclasses import dataclass

HEADER = bytes((0xFF, 0xFF, 0xFD, 0x00))
BROADCAST_ID = 0xFE

# Instructions (Protocol 2.0).
PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET, REBOOT, CLEAR = 1, 2, 3, 4, 5, 6, 8, 0x10
STATUS, SYNC_READ, SYNC_WRITE, FAST_SYNC_READ = 0x55, 0x82, 0x83, 0x8A
BULK_READ, BULK_WRITE, FAST_BULK_READ = 0x92, 0x93, 0x9A

# Status error byte: bit 7 = hardware alert, low bits = instruction error number.
ALERT_BIT = 0x80
ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE = 1, 2, 3, 4
ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = 5, 6, 7


def _crc_table() -> tuple:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data) -> int:
    """CRC-16 (polynomial 0x8005, init 0, no reflection) as the e-Manual specifies."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def has_header_pattern(body) -> bool:
    """True if FF FF FD occurs in `body` (instruction/params), i.e. stuffing is required."""
    return bytes(HEADER[:3]) in bytes(body)


def stuff(body) -> bytes:
    """Insert FD after every FF FF FD in the body (instruction + params, no header/CRC)."""
    if HEADER[:3] not in bytes(body):
        return bytes(body)                  # the common case: nothing to stuff
    out = bytearray()
    for byte in bytes(body):
        out.append(byte)
        if len(out) >= 3 and out[-3:] == HEADER[:3]:
            out.append(0xFD)
    return bytes(out)


def unstuff(body) -> bytes:
    """Remove the FD that follows every FF FF FD (inverse of `stuff`)."""
    data = bytes(body)
    if HEADER[:3] not in data:
        return data                         # the common case: nothing was stuffed
    out = bytearray()
    i = 0
    while i < len(data):
        out.append(data[i])
        if len(out) >= 3 and out[-3:] == HEADER[:3] and i + 1 < len(data) and data[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


def build_packet(dxl_id: int, instruction: int, params=b'') -> bytes:
    """A complete, stuffed, CRC-terminated packet."""
    body = stuff(bytes((instruction,)) + bytes(params))
    length = len(body) + 2
    head = HEADER + bytes((dxl_id, length & 0xFF, length >> 8))
    packet = head + body
    crc = crc16(packet)
    return packet + bytes((crc & 0xFF, crc >> 8))


def build_status(dxl_id: int, error: int, params=b'') -> bytes:
    return build_packet(dxl_id, STATUS, bytes((error,)) + bytes(params))


@dataclass(frozen=True)
class Packet:
    dxl_id: int
    instruction: int
    params: bytes          # de-stuffed; for a status packet params[0] is the error byte
    raw_length: int        # bytes on the wire

    @property
    def error(self) -> int:
        return self.params[0] if self.instruction == STATUS and self.params else 0


class PacketError(ValueError):
    """A malformed packet: bad CRC, bad length or truncated."""


def parse_packet(raw) -> Packet:
    """Parse one complete wire packet (header first); raises PacketError on a CRC mismatch."""
    raw = bytes(raw)
    if raw[:4] != HEADER or len(raw) < 10:
        raise PacketError(f'not a Protocol 2.0 packet: {raw[:8].hex(" ")}')
    length = raw[5] | (raw[6] << 8)
    if len(raw) != 7 + length:
        raise PacketError(f'length field says {7 + length} bytes, got {len(raw)}')
    crc = raw[-2] | (raw[-1] << 8)
    if crc16(raw[:-2]) != crc:
        raise PacketError(f'CRC mismatch (got {crc:#06x}, computed {crc16(raw[:-2]):#06x})')
    body = unstuff(raw[7:-2])
    return Packet(dxl_id=raw[4], instruction=body[0], params=body[1:], raw_length=len(raw))


def le_bytes(value: int, size: int) -> bytes:
    """Little-endian two's complement bytes of a register value."""
    return int(value).to_bytes(size, 'little', signed=value < 0)


def from_le(data, signed: bool = False) -> int:
    return int.from_bytes(bytes(data), 'little', signed=signed)
