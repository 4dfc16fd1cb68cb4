"""Protocol 2.0 framing, and the real dynamixel-sdk against the emulated bus."""

import pytest
from dynamixel_sdk import (
    COMM_SUCCESS,
    GroupBulkRead,
    GroupSyncRead,
    GroupSyncWrite,
    PortHandler,
    Protocol2PacketHandler,
)
from polling import eventually

from cosmos_policy_ros.hardware.dynamixel import protocol as P
from cosmos_policy_ros.hardware.dynamixel.bus import DynamixelBus

# FF FF FD FF little-endian: a negative goal in extended position mode.
HEADER_LIKE_GOAL = -131073


def test_crc_matches_the_sdk_and_the_emanual_example():
    # e-Manual Protocol 2.0 example: ping ID 1 = FF FF FD 00 01 03 00 01 19 4E.
    assert P.build_packet(1, P.PING) == bytes.fromhex('FFFFFD0001030001194E')
    data = bytes(range(200))
    assert P.crc16(data) == Protocol2PacketHandler().updateCRC(0, list(data), len(data))


def test_stuffing_round_trip_and_parse():
    body = bytes((P.WRITE, 116, 0)) + P.le_bytes(HEADER_LIKE_GOAL, 4)
    assert P.has_header_pattern(body)
    stuffed = P.stuff(body)
    assert stuffed == body[:6] + b'\xfd' + body[6:]
    assert P.unstuff(stuffed) == body
    packet = P.parse_packet(P.build_packet(7, P.WRITE, body[1:]))
    assert (packet.dxl_id, packet.instruction, packet.params) == (7, P.WRITE, body[1:])
    corrupt = bytearray(P.build_packet(7, P.WRITE, body[1:]))
    corrupt[-1] ^= 0xFF
    with pytest.raises(P.PacketError, match='CRC'):
        P.parse_packet(bytes(corrupt))


@pytest.fixture
def sdk_port(vx300s_emulator):
    port = PortHandler(vx300s_emulator.port_path)
    assert port.openPort()
    yield port
    port.closePort()


def test_sdk_ping_read_write_reboot(vx300s_emulator, sdk_port):
    ph = Protocol2PacketHandler()
    model, result, error = ph.ping(sdk_port, 9)
    assert (model, result, error) == (1020, COMM_SUCCESS, 0)
    assert ph.ping(sdk_port, 42)[1] != COMM_SUCCESS          # no such motor: no answer
    assert ph.write1ByteTxRx(sdk_port, 9, 11, 5) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(sdk_port, 9, 11) == (5, COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(sdk_port, 9, 64, 1) == (COMM_SUCCESS, 0)
    # EEPROM writes with torque on are refused (access error), as on a real motor.
    assert ph.write1ByteTxRx(sdk_port, 9, 11, 3) == (COMM_SUCCESS, P.ERR_ACCESS)
    assert ph.read1ByteTxRx(sdk_port, 9, 11)[0] == 5
    # The motor answers REBOOT first and restarts after: wait until it answers again rather
    # than racing the emulator thread that starts its silent period.
    vx300s_emulator.reboot_times[9] = 0.1
    assert ph.reboot(sdk_port, 9) == (COMM_SUCCESS, 0)
    assert eventually(lambda: ph.ping(sdk_port, 9)[1] == COMM_SUCCESS)
    assert ph.read1ByteTxRx(sdk_port, 9, 64) == (0, COMM_SUCCESS, 0)   # torque off after reboot


def test_sdk_sync_read_sync_write_bulk_read_and_shadows(vx300s_emulator, sdk_port):
    ph = Protocol2PacketHandler()
    for dxl_id in (1, 2, 3):
        ph.write1ByteTxRx(sdk_port, dxl_id, 64, 1)
    writer = GroupSyncWrite(sdk_port, ph, 116, 4)
    writer.addParam(1, list(P.le_bytes(1500, 4)))
    writer.addParam(2, list(P.le_bytes(2600, 4)))
    assert writer.txPacket() == COMM_SUCCESS
    assert eventually(lambda: vx300s_emulator.motors[1].goal == 1500
                      and vx300s_emulator.motors[2].goal == 2600)
    assert vx300s_emulator.motors[3].goal == 2600          # shadow (Secondary_ID 2) mirrors ID 2
    reader = GroupSyncRead(sdk_port, ph, 116, 4)
    for dxl_id in (1, 2, 3):
        reader.addParam(dxl_id)
    assert reader.txRxPacket() == COMM_SUCCESS
    assert [reader.getData(i, 116, 4) for i in (1, 2, 3)] == [1500, 2600, 2600]
    bulk = GroupBulkRead(sdk_port, ph)
    bulk.addParam(1, 0, 2)        # model number
    bulk.addParam(9, 11, 1)       # operating mode
    assert bulk.txRxPacket() == COMM_SUCCESS
    assert (bulk.getData(1, 0, 2), bulk.getData(9, 11, 1)) == (1120, 3)


def test_sdk_send_side_stuffing_bug_is_guarded(vx300s_emulator, sdk_port):
    """dynamixel-sdk 4.1.0 sends FF FF FD unstuffed: the motor misframes it. Ours stuffs."""
    ph = Protocol2PacketHandler()
    assert ph.write1ByteTxRx(sdk_port, 1, 11, 4) == (COMM_SUCCESS, 0)     # extended position
    result, _ = ph.write4ByteTxRx(sdk_port, 1, 116, HEADER_LIKE_GOAL & 0xFFFFFFFF)
    assert result != COMM_SUCCESS and vx300s_emulator.stats.framing_errors == 1
    assert vx300s_emulator.motors[1].goal == 2048
    sdk_port.closePort()
    bus = DynamixelBus(vx300s_emulator.port_path)
    bus.connect()
    bus.write(1, 'Goal_Position', HEADER_LIKE_GOAL)
    assert vx300s_emulator.motors[1].goal == HEADER_LIKE_GOAL
    assert bus.read(1, 'Goal_Position') == HEADER_LIKE_GOAL   # stuffed status, de-stuffed
    assert bus.stats.stuffed_packets == 1 and vx300s_emulator.stats.framing_errors == 1
    bus.close()
