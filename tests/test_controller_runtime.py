"""The controller's tick (control.runtime), ROS-free, over sim-time sequences.

Inputs are fed as the node feeds them (joint states, camera stamps, chunks, the e-stop) and
every tick's command and status are checked: start-up, sync and async chunk boundaries, e-stop
within one tick, watchdog hold and release, stale / malformed / jumping chunks, lockstep.
"""
import numpy as np
import pytest

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.chunks import DT, Chunk, ChunkError, smooth
from cosmos_policy_ros.control.runtime import ControllerRuntime, RuntimeConfig, State
from cosmos_policy_ros.control.units import robot_to_command
from cosmos_policy_ros.health import Level

CALIBRATION = load_calibration('aloha_sim')
GRIPPER = CALIBRATION.gripper
ARM = list(names.ARM_JOINT_INDICES)
# Robot units: arm joints [rad] and grippers normalised (0.5: half open).
START = np.array([0.0, -0.5, 0.6, 0.0, 0.3, 0.0, 0.5] * 2)
START_COMMAND = robot_to_command(START, GRIPPER)


def runtime(**settings) -> ControllerRuntime:
    config = dict(startup_grace=1.0, observation_timeout=0.5, chunk_timeout=10.0)
    return ControllerRuntime(RuntimeConfig.defaults(**{**config, **settings}), CALIBRATION)


def feed(rt: ControllerRuntime, stamp: float, position=START_COMMAND, cameras=names.CAMERAS):
    """Joint states of both followers (command units) and camera frames stamped `stamp`."""
    for arm, part in names.FOLLOWER_SLICES.items():
        rt.joint_state(arm, position[part], stamp)
    for camera in cameras:
        rt.camera(camera, stamp)


def ramp(stamp: float, step: float = 0.01, start=START, length: int = names.CHUNK_LENGTH,
         **changes) -> Chunk:
    """A chunk (robot units) whose arm joints move `step` rad per point from `start`."""
    positions = np.repeat(start[None], length, axis=0)
    positions[:, ARM] += step * np.arange(length)[:, None]
    fields = dict(stamp=stamp, dt=DT, names=names.VECTOR_NAMES, positions=positions)
    return Chunk(**{**fields, **changes})


def rejected(rt: ControllerRuntime, chunk: Chunk, now: float) -> str:
    """The reason `rt` gives for refusing `chunk` (fails if it accepts it)."""
    with pytest.raises(ChunkError) as refused:
        rt.submit(chunk, now)
    return str(refused.value)


def run(rt: ControllerRuntime, start: float, ticks: int) -> list:
    """Step `ticks` times from `start` with fresh inputs each tick (the arms measured where
    they were last commanded); returns the Ticks."""
    out = []
    for k in range(ticks):
        now = start + k * DT
        sent = rt.gate.last_safe
        feed(rt, now, START_COMMAND if sent is None else sent)
        out.append(rt.step(now))
    return out


def test_waits_for_both_arms_then_holds_where_they_are():
    rt = runtime()
    tick = rt.step(0.0)
    assert tick.command is None and tick.status.state == State.WAITING.value
    rt.joint_state('follower_left', START_COMMAND[:7], 0.0)
    assert rt.step(0.04).command is None                # one arm is not enough
    feed(rt, 0.08)
    tick = rt.step(0.08)
    assert tick.status.state == State.IDLE.value and tick.status.remaining == 0
    np.testing.assert_allclose(tick.command, START_COMMAND)


def test_sync_chunk_plays_to_its_end_holds_then_the_next_starts_at_the_boundary():
    rt = runtime(mode='sync')
    run(rt, 0.0, 2)
    assert rt.submit(ramp(0.08), 0.08) is None          # accepted; runs from the next tick
    ticks = run(rt, 0.08, 50)
    commands = np.array([t.command for t in ticks])
    expected = robot_to_command(ramp(0.08).positions, GRIPPER)
    np.testing.assert_allclose(commands, expected, atol=1e-9)        # point k at tick k
    assert [t.status.remaining for t in ticks[:3]] == [49, 48, 47]
    assert ticks[0].status.state == State.RUNNING.value
    # A newer chunk while one runs waits for its end (sync), then starts from point 0.
    second = ramp(2.0, step=-0.01, start=ramp(0.08).positions[-1])
    rt.submit(second, 2.0)
    after = run(rt, 2.08, 3)
    np.testing.assert_allclose(after[0].command, robot_to_command(second.positions[0],
                                                                  GRIPPER), atol=1e-9)
    assert after[0].status.counts['boundaries'] == 2
    # Without a next chunk the last action is held.
    rt = runtime(mode='sync')
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04), 0.04)
    ticks = run(rt, 0.04, 53)
    assert ticks[-1].status.state == State.HOLDING.value
    np.testing.assert_allclose(ticks[-1].command, ticks[-2].command)


def test_async_chunk_is_aligned_by_its_stamp_and_cross_faded():
    rt = runtime(mode='async', blend_steps=5)
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04), 0.04)
    run(rt, 0.04, 20)                                   # 20 ticks into the first chunk
    now = 0.04 + 20 * DT
    # Predicted from an observation 10 ticks ago: its point 10 is due now.
    late = ramp(now - 10 * DT, step=0.005, start=START + 0.02)
    rt.submit(late, now)
    ticks = run(rt, now, 8)
    old = robot_to_command(ramp(0.04).positions, GRIPPER)
    new = robot_to_command(late.positions, GRIPPER)
    weight = 1 / 6                                       # first blend tick of 5
    np.testing.assert_allclose(ticks[0].command, (1 - weight) * old[20] + weight * new[10],
                               atol=1e-9)
    np.testing.assert_allclose(ticks[6].command, new[16], atol=1e-9)   # blend over
    assert ticks[-1].status.counts['boundaries'] == 2


def test_estop_holds_within_one_tick_and_refuses_chunks_until_released():
    rt = runtime()
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04, step=0.02), 0.04)
    ticks = run(rt, 0.04, 10)
    events = rt.set_estop(True)
    assert events[0][0] == Level.WARN and 'E-STOP' in events[0][1]
    held = run(rt, 0.44, 5)
    for tick in held:                                    # the very next tick holds
        np.testing.assert_allclose(tick.command, ticks[-1].command)
        assert tick.status.state == State.ESTOP.value
    assert rejected(rt, ramp(0.6), 0.6) == 'e-stop engaged'
    assert rt.health().level == Level.ERROR
    rt.set_estop(False)
    tick = run(rt, 0.64, 1)[0]
    assert tick.status.state == State.IDLE.value        # the old chunk was dropped
    np.testing.assert_allclose(tick.command, ticks[-1].command)
    rt.submit(ramp(0.68, start=START + 0.18), 0.68)
    assert run(rt, 0.68, 1)[0].status.state == State.RUNNING.value
    assert rt.counts['estops'] == 1


def test_watchdog_holds_on_a_late_camera_and_releases_when_it_is_back():
    rt = runtime()
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04), 0.04)
    ticks = run(rt, 0.04, 5)
    # cam_high stops; the others go on. Past observation_timeout (0.5 s) the arm holds.
    late = []
    for k in range(20):
        now = 0.24 + k * DT
        feed(rt, now, rt.gate.last_safe, cameras=('cam_left_wrist', 'cam_right_wrist'))
        late.append(rt.step(now))
    states = [t.status.state for t in late]
    first = states.index(State.WATCHDOG.value)
    assert 0.5 <= late[first].status.stamp - 0.20 <= 0.5 + 2 * DT
    assert late[first].events and 'cam_high' in late[first].events[0][1]
    np.testing.assert_allclose(late[-1].command, late[first].command)   # holding still
    assert 'cam_high' in late[-1].status.reason
    assert rejected(rt, ramp(1.0), 1.0).startswith('watchdog engaged')
    assert rt.health().level == Level.WARN
    released = run(rt, 1.04, 2)
    assert released[-1].status.state == State.IDLE.value
    assert rt.counts['watchdog_engagements'] == 1 and ticks[0].command is not None


def test_chunk_timeout_holds_and_the_next_chunk_ends_it():
    rt = runtime(chunk_timeout=1.0)
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04), 0.04)
    ticks = run(rt, 0.04, 40)
    assert ticks[-1].status.state == State.WATCHDOG.value
    assert 'chunk' in ticks[-1].status.reason
    now = 0.04 + 40 * DT
    rt.submit(ramp(now, start=START + 0.39), now)
    assert run(rt, now, 1)[0].status.state == State.RUNNING.value


@pytest.mark.parametrize('changes, reason', [
    ({'stamp': -2.5}, 'stale'),
    ({'stamp': 0.5}, 'in the future'),
    ({'dt': 0.02}, 'ms apart'),
    ({'names': ('bogus',) + names.VECTOR_NAMES[1:]}, 'unknown joint names'),
    ({'positions': np.zeros((49, 14))}, 'size (49, 14)'),
    ({'positions': np.full((50, 14), np.nan)}, 'non-finite value at point 0'),
])
def test_stale_and_malformed_chunks_are_rejected_and_the_running_one_goes_on(changes, reason):
    rt = runtime(max_chunk_age=2.0)
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04), 0.04)
    run(rt, 0.04, 4)
    bad = rejected(rt, ramp(**{'stamp': 0.2, **changes}), 0.2)
    assert reason in bad, bad
    tick = run(rt, 0.2, 1)[0]
    assert tick.status.state == State.RUNNING.value
    np.testing.assert_allclose(tick.command, robot_to_command(ramp(0.04).positions[4],
                                                              GRIPPER), atol=1e-9)
    assert tick.status.counts['chunks_rejected'] == 1
    assert tick.status.counts['last_reject'] == bad
    assert rt.health().level == Level.WARN                   # reported on /diagnostics


def test_a_chunk_that_jumps_is_rejected_naming_the_joint():
    rt = runtime(max_jump_rad=0.3)
    run(rt, 0.0, 1)
    positions = ramp(0.04).positions.copy()
    positions[20:, 1] += 1.5                              # left shoulder +1.5 rad at point 20
    bad = rejected(rt, ramp(0.04, positions=positions), 0.04)
    assert 'left_shoulder jumps 1.5' in bad and 'point 19 to 20' in bad
    far = rejected(rt, ramp(0.04, start=START + 0.5), 0.04)   # first point 0.5 rad away
    assert 'from the measured position' in far
    # The gripper may open or close in one step; a smooth arm chunk within the limit runs.
    gripper_snap = ramp(0.04).positions.copy()
    gripper_snap[10:, names.GRIPPER_INDICES] = 1.0
    rt.submit(ramp(0.04, positions=gripper_snap), 0.04)
    tick = run(rt, 0.04, 1)[0]
    assert tick.status.state == State.RUNNING.value
    counts = tick.status.counts
    assert counts['jumps_rejected'] == 2 and counts['chunks_rejected'] == 2
    assert counts['max_chunk_jump'] == pytest.approx(1.5 + 0.01)
    health = rt.health()
    assert health.level == Level.WARN and health.values['jumps_rejected'] == 2
    off = runtime(max_jump_rad=0.0)                      # 0: off; the jump is still measured
    run(off, 0.0, 1)
    off.submit(ramp(0.04, positions=positions), 0.04)
    assert off.summary()['max_chunk_jump'] == pytest.approx(1.5 + 0.01)


def test_the_default_limit_rejects_a_1_5_rad_fault():
    rt = runtime()
    assert rt.config.max_jump_rad == 1.2                  # schemas.controller
    run(rt, 0.0, 1)
    positions = ramp(0.04).positions.copy()
    positions[30:, 10] += 1.5                             # right forearm_roll
    assert 'right_forearm_roll jumps 1.5' in rejected(rt, ramp(0.04, positions=positions), 0.04)


def test_an_async_chunk_is_checked_from_the_point_due_now():
    rt = runtime(mode='async', max_jump_rad=0.3)
    run(rt, 0.0, 1)
    rt.submit(ramp(0.04), 0.04)
    run(rt, 0.04, 21)                                    # the arm is near START + 0.2
    now = 0.04 + 21 * DT
    # Inferred from an observation 10 ticks ago: point 0 is 0.4 rad behind, point 10 is due.
    late = ramp(now - 10 * DT, step=0.04, start=START - 0.2)
    rt.submit(late, now)
    sync = runtime(mode='sync', max_jump_rad=0.3)
    run(sync, 0.0, 1)
    sync.submit(ramp(0.04), 0.04)
    run(sync, 0.04, 21)
    assert 'starts (point 0)' in rejected(sync, ramp(now - 10 * DT, step=0.04,
                                                     start=START - 0.2), now)


def test_lockstep_commands_only_while_a_chunk_runs_and_starts_it_at_its_stamp():
    start = lockstep.episode_start(0)
    rt = runtime(lockstep=True)
    feed(rt, start)
    tick = rt.step(start)
    assert tick.command is None and tick.status.state == State.IDLE.value   # sim waits
    assert rt.submit(ramp(start + 0.08), start + 0.04) is None   # ahead of the clock: waits
    assert rt.step(start + 0.04).command is None
    feed(rt, start + 0.08)
    tick = rt.step(start + 0.08)                              # the clock reaches its stamp
    np.testing.assert_allclose(tick.command, robot_to_command(ramp(0).positions[0], GRIPPER),
                               atol=1e-9)
    assert rt.step(start + 0.08) == rt.step(start + 0.08)     # a repeated instant: nothing
    assert rt.step(start + 0.08).status is None
    # An accepted chunk is commanded at once (the sim waits at its instant).
    now = start + 0.12
    feed(rt, now)
    assert rt.submit(ramp(now, start=ramp(0).positions[1]), now).command is not None
    # Next episode: chunks dropped, the gate re-seeded from that episode's joint states.
    nxt = lockstep.episode_start(1)
    assert 'stale' in rejected(rt, ramp(now + 0.04), nxt)
    assert rt.step(nxt).command is None                       # no states of episode 1 yet
    feed(rt, nxt, START_COMMAND + 0.1)
    tick = rt.step(nxt + 0.04)                 # idle since the last episode: chunk timeout
    assert tick.command is None and tick.status.state == State.WATCHDOG.value
    assert rt.submit(ramp(nxt + 0.04, start=START + 0.1), nxt + 0.04).command is not None
    np.testing.assert_allclose(rt.gate.last_safe[ARM], (START_COMMAND + 0.1)[ARM])


def test_lockstep_with_execute_steps_commands_that_many_actions_then_stops():
    """The sim waits once the controller stops commanding: after execute_steps actions the
    episode pauses for the next query, whose seed counts queries in execute_steps periods."""
    start = lockstep.episode_start(0)
    rt = runtime(lockstep=True, execute_steps=10)
    feed(rt, start)
    rt.step(start)
    assert rt.submit(ramp(start), start).command is not None     # action 0 at its stamp
    ticks = run(rt, start + DT, 12)
    commanded = [tick.command is not None for tick in ticks]
    assert commanded == [True] * 9 + [False] * 3                # actions 1..9, then none
    assert ticks[-1].status.state == State.HOLDING.value and ticks[-1].status.remaining == 0
    for query in range(4):
        stamp = start + query * 10 * DT
        assert lockstep.noise_seed(7, stamp, execute_steps=10) == 7000 + query
    assert lockstep.noise_seed(7, start + 2.0) == 7001          # the reference's 50 actions


def test_lockstep_ensemble_commands_the_mean_of_the_chunks_covering_each_tick():
    """ensemble: from the second chunk's stamp on, each command is the mean (decay 0) of what
    both chunks predicted for that instant, in command units, through the gate."""
    start = lockstep.episode_start(0)
    rt = runtime(lockstep=True, execute_steps=10, ensemble=True, ensemble_decay=0.0)
    feed(rt, start)
    rt.step(start)
    first = ramp(start, step=0.01)
    rt.submit(first, start)
    run(rt, start + DT, 9)
    second = ramp(start + 10 * DT, step=-0.01, start=first.positions[10])
    tick = rt.submit(second, start + 10 * DT)
    ticks = [tick, *run(rt, start + 11 * DT, 9)]
    for k, tick in enumerate(ticks):
        mean = (first.positions[10 + k] + second.positions[k]) / 2
        np.testing.assert_allclose(tick.command, robot_to_command(mean, GRIPPER), atol=1e-12)
    assert rt.summary()['step_clamped'] == 0       # the gate passed the means unchanged


def test_chunk_smoothing_commands_the_moving_average_of_a_jittery_chunk():
    """A chunk whose arm joints zig-zag 0.05 rad around a ramp: the commands follow its
    5-action moving average (steps of at most 0.03 rad, against 0.09-0.11 raw), in command
    units, through the gate."""
    start = lockstep.episode_start(0)
    rt = runtime(lockstep=True, chunk_smoothing=5)
    feed(rt, start)
    rt.step(start)
    chunk = ramp(start, step=0.01)
    zigzag = 0.05 * (-1.0) ** np.arange(names.CHUNK_LENGTH)
    chunk.positions[:, ARM] += zigzag[:, None]
    ticks = [rt.submit(chunk, start), *run(rt, start + DT, 9)]
    expected = smooth(chunk.positions, 5)
    for k, tick in enumerate(ticks):
        np.testing.assert_allclose(tick.command, robot_to_command(expected[k], GRIPPER),
                                   atol=1e-12)
    commanded_steps = np.abs(np.diff(expected[:10, ARM], axis=0))
    assert commanded_steps.max() < 0.04 < np.abs(np.diff(chunk.positions[:10, ARM], axis=0)).min()


def test_lockstep_a_waiting_chunk_that_is_bad_is_rejected_when_its_time_comes():
    start = lockstep.episode_start(0)
    rt = runtime(lockstep=True)
    feed(rt, start)
    rt.step(start)
    positions = np.full((names.CHUNK_LENGTH, 14), np.nan)
    assert rt.submit(ramp(start + 0.04, positions=positions), start) is None   # waits
    feed(rt, start + 0.04)
    tick = rt.step(start + 0.04)
    assert tick.command is None and tick.events[0][0] == Level.ERROR
    assert 'non-finite value' in tick.events[0][1] and rt.counts['chunks_rejected'] == 1
