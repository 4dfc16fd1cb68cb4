"""Chunk validation, executor sync/async boundaries, query trigger (ROS-free)."""
import numpy as np
import pytest

from cosmos_policy_ros.control.chunks import (
    DT,
    Chunk,
    ChunkError,
    ChunkExecutor,
    StepStats,
    check_chunk,
    sample,
    smooth,
)
from cosmos_policy_ros.control.trigger import ControllerStatus, QueryTrigger
from cosmos_policy_ros.names import CHUNK_LENGTH, VECTOR_NAMES


def ramp_chunk(start_value: float, slope: float = 0.01) -> np.ndarray:
    steps = np.arange(CHUNK_LENGTH)[:, None]
    return np.broadcast_to(start_value + slope * steps, (CHUNK_LENGTH, 14)).copy()


def good_chunk(stamp=10.0, **changes) -> Chunk:
    fields = {'stamp': stamp, 'dt': DT, 'names': VECTOR_NAMES, 'positions': ramp_chunk(0.0)}
    fields.update(changes)
    return Chunk(**fields)


def test_good_chunk_accepted_and_reordered():
    chunk = good_chunk()
    np.testing.assert_array_equal(check_chunk(chunk, now=10.2, max_age=1.0).positions,
                                  chunk.positions)
    order = list(reversed(range(14)))
    shuffled = good_chunk(names=tuple(VECTOR_NAMES[i] for i in order),
                          positions=chunk.positions[:, order])
    result = check_chunk(shuffled, now=10.2, max_age=1.0)
    np.testing.assert_array_equal(result.positions, chunk.positions)


@pytest.mark.parametrize('changes, now, expected', [
    ({}, 12.0, 'stale'),
    ({}, 9.0, 'in the future'),
    ({'positions': np.full((CHUNK_LENGTH, 14), np.nan)}, 10.1, 'non-finite'),
    ({'positions': np.zeros((CHUNK_LENGTH + 1, 14))}, 10.1, 'size'),
    ({'positions': np.zeros((CHUNK_LENGTH, 13)), 'names': VECTOR_NAMES[:13]}, 10.1, 'missing'),
    ({'names': VECTOR_NAMES[:13] + ('right_elbow_typo',)}, 10.1, 'unknown joint names'),
    ({'dt': 0.02}, 10.1, 'ms apart'),
])
def test_bad_chunks_rejected_with_reason(changes, now, expected):
    with pytest.raises(ChunkError) as rejected:
        check_chunk(good_chunk(**changes), now=now, max_age=1.0)
    assert any(expected in reason for reason in rejected.value.reasons), rejected.value.reasons


def test_sample_nearest_and_interpolated():
    positions = ramp_chunk(0.0, slope=1.0)
    assert sample(positions, 0.0, 2.4 * DT, DT, interpolate=False)[1] == 2
    assert sample(positions, 0.0, 2.6 * DT, DT, interpolate=False)[1] == 3
    value, _ = sample(positions, 0.0, 2.25 * DT, DT, interpolate=True)
    np.testing.assert_allclose(value, 2.25)
    np.testing.assert_allclose(sample(positions, 0.0, 99.0, DT, True)[0], CHUNK_LENGTH - 1)


def run_executor(mode: str, blend_steps: int, latency_steps: int, jump: float,
                 chunks: int = 3):
    """Chunk k is a ramp offset by k*jump; each is predicted `latency_steps` before it lands."""
    executor = ChunkExecutor(mode=mode, blend_steps=blend_steps)
    stats = StepStats()
    commanded, now, stamp, sent = [], 0.0, None, 0
    trigger = QueryTrigger(mode=mode, trigger_steps=latency_steps + 2)
    arrival = None
    for tick in range(chunks * CHUNK_LENGTH * 2):
        now = tick * DT
        if arrival is None and sent < chunks:
            remaining = executor.remaining(now) if sent else 0
            status = ControllerStatus(remaining, -1.0 if stamp is None else stamp, 'running')
            if sent == 0 or trigger.should_query(status, now):
                stamp, arrival = now, now + latency_steps * DT
        if arrival is not None and now >= arrival - 1e-9:
            executor.submit(ramp_chunk(sent * jump) + 0.01 * tick, stamp, now)
            trigger.published(stamp, now, latency_steps * DT)
            sent, arrival = sent + 1, None
        target = executor.target(now)
        if target is not None:
            stats.add(target.position, target.boundary)
            commanded.append(target.position[0])
    return stats, np.array(commanded)


def test_sync_holds_then_plays_whole_chunk():
    executor = ChunkExecutor(mode='sync')
    assert executor.target(0.0) is None
    executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=0.0)
    values = [executor.target(k * DT).position[0] for k in range(CHUNK_LENGTH + 5)]
    assert values[:CHUNK_LENGTH] == list(range(CHUNK_LENGTH))
    assert values[CHUNK_LENGTH:] == [CHUNK_LENGTH - 1] * 5
    assert executor.remaining((CHUNK_LENGTH + 4) * DT) == 0


@pytest.mark.parametrize('mode', ['sync', 'async'])
def test_only_the_first_execute_steps_actions_play_then_the_last_of_them_holds(mode):
    executor = ChunkExecutor(mode=mode, execute_steps=20)
    executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=0.0)
    targets = [executor.target(k * DT) for k in range(25)]
    assert executor.remaining(0.0) == 19
    assert [t.position[0] for t in targets] == list(range(20)) + [19] * 5
    assert not targets[19].holding and targets[20].holding
    assert executor.remaining(24 * DT) == 0


@pytest.mark.parametrize('steps', [0, CHUNK_LENGTH + 1])
def test_execute_steps_outside_a_chunk_is_refused(steps):
    with pytest.raises(ValueError, match='execute_steps must be in 1..50'):
        ChunkExecutor(execute_steps=steps)


def expected_ensemble(chunks, tick, decay):
    """ACT's temporal ensemble at `tick`: chunks = [(start tick, (50, 14) positions)], oldest
    first; those covering the tick vote with weight exp(-decay * i)."""
    votes = [positions[tick - start] for start, positions in chunks
             if 0 <= tick - start < CHUNK_LENGTH]
    weights = np.exp(-decay * np.arange(len(votes)))
    return (weights[:, None] * np.asarray(votes)).sum(0) / weights.sum()


@pytest.mark.parametrize('decay', [0.0, 0.01, 0.5])
def test_sync_ensemble_plays_the_weighted_mean_of_every_chunk_covering_a_tick(decay):
    """execute_steps 10: a new chunk every 10 ticks, each voting on its 50 ticks, so after
    40 ticks five chunks vote, and a chunk stops voting once its 50 actions are past."""
    executor = ChunkExecutor(mode='sync', execute_steps=10, ensemble=True, ensemble_decay=decay)
    rng = np.random.default_rng(0)
    chunks, played = [], []
    for tick in range(90):
        if tick % 10 == 0:
            chunks.append((tick, rng.normal(size=(CHUNK_LENGTH, 14))))
            executor.submit(chunks[-1][1], stamp=tick * DT, now=tick * DT)
        target = executor.target(tick * DT)
        assert target.index == tick % 10 and not target.holding
        played.append(target.position)
        np.testing.assert_allclose(target.position, expected_ensemble(chunks, tick, decay))
    voters = [sum(0 <= t - start < CHUNK_LENGTH for start, _ in chunks) for t in (5, 45, 85)]
    assert voters == [1, 5, 5]
    assert len(executor._history) == 5      # chunks started before tick 40 no longer vote
    # The newest chunk alone would have played something else: the mean is what played.
    assert not np.allclose(played[85], chunks[-1][1][5])


def test_ensemble_holds_the_last_played_mean_and_clear_forgets_every_chunk():
    executor = ChunkExecutor(mode='sync', execute_steps=10, ensemble=True, ensemble_decay=0.0)
    executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=0.0)
    for tick in range(10):
        executor.target(tick * DT)
    executor.submit(ramp_chunk(100.0, 1.0), stamp=10 * DT, now=10 * DT)
    last = [executor.target(tick * DT) for tick in range(10, 15)]
    assert [t.position[0] for t in last] == [55.0, 56.0, 57.0, 58.0, 59.0]
    executor = ChunkExecutor(mode='sync', execute_steps=3, ensemble=True, ensemble_decay=0.0)
    executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=0.0)
    held = [executor.target(tick * DT) for tick in range(6)]
    assert [t.position[0] for t in held] == [0.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert held[-1].holding
    executor.clear()
    executor.submit(ramp_chunk(7.0, 1.0), stamp=6 * DT, now=6 * DT)
    assert executor.target(6 * DT).position[0] == 7.0     # the old chunk has no vote


def test_async_ensemble_aligns_chunks_by_stamp():
    """A chunk arriving 4 ticks after its observation votes with its action 4 on that tick."""
    executor = ChunkExecutor(mode='async', ensemble=True, ensemble_decay=0.0)
    executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=0.0)
    executor.submit(ramp_chunk(10.0, 1.0), stamp=20 * DT, now=24 * DT)
    target = executor.target(24 * DT)
    assert target.index == 4
    assert target.position[0] == pytest.approx((24.0 + 14.0) / 2)


@pytest.mark.parametrize('decay', [-0.1, float('nan')])
def test_ensemble_decay_must_be_a_non_negative_number(decay):
    with pytest.raises(ValueError, match='ensemble_decay must be finite and >= 0'):
        ChunkExecutor(ensemble=True, ensemble_decay=decay)


def test_smooth_averages_out_step_noise_and_keeps_a_straight_line_inside():
    rng = np.random.default_rng(0)
    line = ramp_chunk(0.0, 0.01)
    noisy = line + rng.normal(0.0, 0.02, line.shape)
    smoothed = smooth(noisy, 7)
    assert smoothed.shape == noisy.shape
    inner = slice(3, CHUNK_LENGTH - 3)         # full windows: the mean of a line is the line
    np.testing.assert_allclose(smooth(line, 7)[inner], line[inner], atol=1e-12)
    error_before = np.abs(noisy - line)[inner].mean()
    error_after = np.abs(smoothed - line)[inner].mean()
    assert error_after < 0.5 * error_before    # about 1/sqrt(7) of the noise is left
    np.testing.assert_allclose(smooth(np.full((CHUNK_LENGTH, 14), 0.3), 9), 0.3)
    assert smoothed[0, 0] == pytest.approx((4 * noisy[0, 0] + noisy[1:4, 0].sum()) / 7)
    np.testing.assert_array_equal(smooth(noisy, 1), noisy)
    assert smoothed.min() >= noisy.min() and smoothed.max() <= noisy.max()


@pytest.mark.parametrize('window', [0, 2, 51])
def test_smoothing_window_must_be_odd_and_inside_a_chunk(window):
    with pytest.raises(ValueError, match=r'ChunkExecutor.smoothing must be an odd number of '
                                         r'actions in 1..50 .*got ' + str(window)):
        ChunkExecutor(smoothing=window)


def test_executor_plays_the_smoothed_chunk():
    rng = np.random.default_rng(1)
    positions = ramp_chunk(0.0, 0.01) + rng.normal(0.0, 0.02, (CHUNK_LENGTH, 14))
    executor = ChunkExecutor(mode='sync', smoothing=5)
    executor.submit(positions, stamp=0.0, now=0.0)
    played = np.array([executor.target(tick * DT).position for tick in range(CHUNK_LENGTH)])
    np.testing.assert_allclose(played, smooth(positions, 5))


def test_sync_plays_a_resent_chunk_of_the_same_observation_once():
    """A re-query of the same observation (same stamp) while its chunk runs or waits is the
    same chunk: it is not queued to play again. A chunk of a newer observation is."""
    executor = ChunkExecutor(mode='sync')
    first = executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=0.0)
    executor.target(0.0)
    assert executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=10 * DT) == first
    values = [executor.target(k * DT) for k in range(1, CHUNK_LENGTH + 5)]
    assert {v.chunk_id for v in values} == {first}
    assert values[-1].holding and executor.remaining((CHUNK_LENGTH + 4) * DT) == 0
    newer = executor.submit(ramp_chunk(5.0, 1.0), stamp=2.0, now=(CHUNK_LENGTH + 5) * DT)
    assert executor.submit(ramp_chunk(5.0, 1.0), stamp=2.0, now=(CHUNK_LENGTH + 5) * DT) == newer
    assert newer != first
    assert executor.target((CHUNK_LENGTH + 6) * DT).chunk_id == newer


def test_async_skips_inference_latency():
    executor = ChunkExecutor(mode='async', blend_steps=0)
    executor.submit(ramp_chunk(0.0, 1.0), stamp=0.0, now=8 * DT)
    target = executor.target(8 * DT)
    assert target.index == 8 and target.position[0] == 8.0 and target.boundary


def test_async_boundary_steps_smaller_than_sync_for_jumpy_chunks():
    sync, _ = run_executor('sync', blend_steps=0, latency_steps=5, jump=0.5)
    asyn, _ = run_executor('async', blend_steps=8, latency_steps=5, jump=0.5)
    assert sync.boundaries >= 2 and asyn.boundaries >= 2
    assert sync.max_boundary_step >= 0.5
    assert asyn.max_boundary_step < sync.max_boundary_step / 4
    splice, _ = run_executor('async', blend_steps=0, latency_steps=5, jump=0.5)
    assert splice.max_boundary_step >= 0.5


def test_step_stats_counts_boundaries():
    stats = StepStats()
    for value, boundary in [(0, False), (0.1, False), (1.1, True), (1.2, True), (1.3, False)]:
        stats.add(np.full(14, value), boundary)
    assert stats.boundaries == 1
    assert stats.max_boundary_step == pytest.approx(1.0)
    assert stats.boundary_steps == [pytest.approx(1.0)]


def test_trigger_waits_for_ack_then_queries():
    trigger = QueryTrigger(mode='sync', ack_timeout=1.0)
    idle = ControllerStatus(remaining=0, last_chunk_stamp=-1.0, state='idle')
    assert trigger.should_query(idle, 0.0)
    trigger.published(stamp=0.0, now=0.5, latency=0.5)
    assert not trigger.should_query(idle, 0.6)          # not yet seen by the controller
    running = ControllerStatus(remaining=30, last_chunk_stamp=0.0, state='running')
    assert not trigger.should_query(running, 0.7)
    done = ControllerStatus(remaining=0, last_chunk_stamp=0.0, state='holding')
    assert trigger.should_query(done, 2.0)
    assert not trigger.should_query(ControllerStatus(0, 0.0, 'estop'), 2.0)
    assert QueryTrigger(mode='async', trigger_steps=-1, latency=0.5).steps_ahead() == 18
    round_trip = ControllerStatus.from_json(running.to_json())
    assert round_trip == running
