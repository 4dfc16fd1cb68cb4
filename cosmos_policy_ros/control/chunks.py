"""Action chunks: validation and time-indexed execution, sync or async (ROS-free).

A chunk is CHUNK_LENGTH targets DT apart, stamped with the time of the observation it was
predicted from. Times are seconds on the controller's clock (sim time in sim).

Sync (the reference's behaviour): a chunk plays from its first action when it arrives, to its
end, then the last action is held until the next chunk. Async: the next inference starts while
a chunk runs; the new chunk is aligned by its observation stamp (the steps that elapsed during
inference are skipped) and cross-faded with the old one over `blend_steps` ticks (0: splice).
Either way only a chunk's first `execute_steps` actions are played (the reference plays all
50); fewer means more queries and a shorter open-loop stretch between observations.

Temporal ensembling (ACT's `temporal_agg`, off by default): every tick plays the weighted mean
of the actions that all chunks still covering it predicted for that tick, not only the newest
chunk's, with weight exp(-decay * i) for the i-th oldest. Each chunk keeps all 50 actions for
this (execute_steps still says when the next one starts), so with execute_steps 10 up to five
chunks vote on each action. Chunks are aligned where they start: a sync chunk where it starts
playing (its observation stamp in lockstep, its arrival live), an async one by its stamp.
Averaging predictions made from different observations smooths the chunk-to-chunk jitter of a
small policy; see models/sim_transfer_cube/README.md.

Chunk smoothing (`smoothing`, off by default) replaces each arriving chunk by its centred moving
average over `smoothing` actions, the ends held. At the reference's image size the action
frame holds many copies of the chunk and the readback averages them; a small preset's frame
holds one, so each action carries its own sampling noise (the shipped 64 px policy's chunks
move 4x more from step to step than the demonstrations). Averaging neighbouring actions of a
smooth trajectory removes most of that noise; a mean of positions inside the joint limits
stays inside them.
"""
from dataclasses import dataclass, field

import numpy as np

from cosmos_policy_ros.names import CHUNK_LENGTH, CONTROL_HZ, STATE_DIM, VECTOR_NAMES

MODES = ('sync', 'async')
DT = 1.0 / CONTROL_HZ
ENSEMBLE_DECAY = 0.01          # ACT's temporal-ensembling weight decay (the default)


@dataclass(frozen=True)
class Chunk:
    stamp: float                 # observation time the chunk was predicted from [s]
    dt: float                    # seconds between consecutive targets
    names: tuple                 # one per column of `positions`
    positions: np.ndarray        # (length, len(names))
    source: str = ''

    def __post_init__(self):
        object.__setattr__(self, 'positions', np.asarray(self.positions, dtype=np.float64))
        object.__setattr__(self, 'names', tuple(self.names))


class ChunkError(ValueError):
    """A chunk that must not run; `reasons` names every problem found."""

    def __init__(self, reasons):
        self.reasons = tuple(reasons)
        super().__init__('; '.join(self.reasons))


def check_chunk(chunk: Chunk, now: float, max_age: float, expected_names=VECTOR_NAMES,
                length: int = CHUNK_LENGTH, dt: float = DT, future_tolerance: float = 0.1,
                dt_tolerance: float = 1e-3) -> Chunk:
    """The chunk with its columns in `expected_names` order, if names, size, spacing, values
    and age are all right; else ChunkError with every reason.

    Names may come in any order (columns are reordered); unknown, missing or repeated names
    reject the chunk. Age is now - stamp; a stamp from the future (beyond a small tolerance
    for clock skew) is rejected as well, because its time alignment would be wrong.
    """
    reasons = []
    names = list(chunk.names)
    unknown = sorted(set(names) - set(expected_names))
    missing = sorted(set(expected_names) - set(names))
    if unknown:
        reasons.append(f'unknown joint names {unknown}; expected {list(expected_names)}')
    if missing:
        reasons.append(f'missing joint names {missing}')
    if len(set(names)) != len(names):
        reasons.append('repeated joint names')
    positions = chunk.positions
    if positions.ndim != 2 or positions.shape != (length, len(names)):
        reasons.append(f'size {positions.shape} but ({length}, {len(expected_names)}) is '
                       'required (points x joints)')
    elif not np.all(np.isfinite(positions)):
        bad = np.argwhere(~np.isfinite(positions))[0].tolist()
        reasons.append(f'non-finite value at point {bad[0]}, joint {names[bad[1]]!r}')
    if not abs(chunk.dt - dt) <= dt_tolerance:
        reasons.append(f'points are {chunk.dt * 1e3:.1f} ms apart (time_from_start); '
                       f'{dt * 1e3:.1f} ms required')
    age = now - chunk.stamp
    if not np.isfinite(age) or age > max_age:
        reasons.append(f'stale: observation is {age:.3f} s old (max_chunk_age {max_age} s)')
    elif age < -future_tolerance:
        reasons.append(f'stamp is {-age:.3f} s in the future; check that all nodes use the '
                       'same clock (use_sim_time)')
    if reasons:
        raise ChunkError(reasons)
    order = [names.index(name) for name in expected_names]
    return Chunk(chunk.stamp, chunk.dt, tuple(expected_names), positions[:, order],
                 chunk.source)


def check_execute_steps(value: int, name: str = 'execute_steps') -> None:
    """ValueError unless `value` actions are a playable part of a chunk (1..CHUNK_LENGTH)."""
    if not 1 <= value <= CHUNK_LENGTH:
        raise ValueError(f'{name} must be in 1..{CHUNK_LENGTH}, got {value}')


def check_smoothing(value: int, name: str = 'smoothing') -> None:
    """ValueError unless `value` is an odd moving-average window of at most CHUNK_LENGTH."""
    if not (1 <= value <= CHUNK_LENGTH and value % 2 == 1):
        raise ValueError(f'{name} must be an odd number of actions in 1..{CHUNK_LENGTH} '
                         f'(1: off; a centred window needs an odd length), got {value}')


def smooth(positions: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of each column over `window` rows, the first and last row
    repeated past the ends (a chunk that holds still stays where it is)."""
    check_smoothing(window, 'window')
    positions = np.asarray(positions, dtype=np.float64)
    if window == 1:
        return positions
    half = window // 2
    padded = np.concatenate([np.repeat(positions[:1], half, 0), positions,
                             np.repeat(positions[-1:], half, 0)])
    sums = np.cumsum(np.concatenate([np.zeros((1, positions.shape[1])), padded]), axis=0)
    return (sums[window:] - sums[:-window]) / window


def sample(positions: np.ndarray, start: float, now: float, dt: float,
           interpolate: bool) -> tuple:
    """Target of a chunk started at `start` at time `now` -> (position, index).

    Without interpolation the nearest action is used (not floor: a tick that fires a little
    early must not repeat the previous action); with it, linear between neighbours (for
    output rates above the control rate). Before the start: the first action; after the
    end: the last one (hold).
    """
    x = (now - start) / dt
    last = len(positions) - 1
    if not interpolate:
        index = int(np.clip(np.floor(x + 0.5), 0, last))
        return positions[index], index
    x = float(np.clip(x, 0.0, last))
    lower = int(np.floor(x))
    upper = min(lower + 1, last)
    frac = x - lower
    return (1.0 - frac) * positions[lower] + frac * positions[upper], lower


@dataclass
class _Running:
    chunk_id: int
    positions: np.ndarray         # all of the chunk's actions
    start: float                  # time of action 0
    stamp: float
    played: int                   # actions played before the next chunk (execute_steps)


@dataclass(frozen=True)
class ExecTarget:
    position: np.ndarray          # (14,) desired target before the safety gate
    chunk_id: int
    index: int                    # action index in the active chunk
    boundary: bool                # first tick of a new chunk or inside its blend window
    holding: bool                 # past the end of the chunk: holding its last action


@dataclass
class ChunkExecutor:
    mode: str = 'sync'
    dt: float = DT
    blend_steps: int = 5          # async cross-fade length in ticks (0: splice)
    interpolate: bool = False
    execute_steps: int = CHUNK_LENGTH   # actions played of each chunk (the rest are dropped)
    ensemble: bool = False        # temporal ensembling over every chunk covering a tick
    ensemble_decay: float = ENSEMBLE_DECAY   # weight exp(-decay * i), i = 0: oldest chunk
    smoothing: int = 1            # moving-average window over each chunk's actions (1: off)
    _active: _Running | None = None
    _history: list = field(default_factory=list)   # ensemble: chunks that may cover a tick
    _previous: _Running | None = None
    _pending: list = field(default_factory=list)
    _switch_time: float | None = None
    _fresh_switch: bool = False
    _next_id: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'ChunkExecutor.mode: {self.mode!r} is not one of {list(MODES)}')
        if not self.dt > 0:
            raise ValueError(f'ChunkExecutor.dt must be positive, got {self.dt}')
        if self.blend_steps < 0:
            raise ValueError(f'ChunkExecutor.blend_steps must be >= 0, got {self.blend_steps}')
        check_execute_steps(self.execute_steps, 'ChunkExecutor.execute_steps')
        check_smoothing(self.smoothing, 'ChunkExecutor.smoothing')
        if not (np.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            raise ValueError(f'ChunkExecutor.ensemble_decay must be finite and >= 0, got '
                             f'{self.ensemble_decay}')

    def submit(self, positions, stamp: float, now: float) -> int:
        """Queue (sync) or switch to (async) a validated chunk; returns its id."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != STATE_DIM:
            raise ValueError(f'chunk positions must be (N, {STATE_DIM}), got {positions.shape}')
        positions = smooth(positions, self.smoothing)
        if self.mode == 'sync':
            # One chunk per observation: a re-sent query of the same observation (the policy
            # re-queries when a chunk's acknowledgment is slow) must not play the chunk again.
            # Under load in lockstep that replay shifted every later chunk of the episode.
            known = [(chunk_id, known_stamp) for chunk_id, _, known_stamp in self._pending]
            if self._active is not None:
                known.append((self._active.chunk_id, self._active.stamp))
            for chunk_id, known_stamp in known:
                if abs(known_stamp - stamp) < 1e-9:
                    return chunk_id
        chunk_id = self._next_id
        self._next_id += 1
        if self.mode == 'sync':
            self._pending = [(chunk_id, positions, stamp)]   # newest wins
        else:
            self._previous = self._active
            self._start(_Running(chunk_id, positions, start=stamp, stamp=stamp,
                                 played=self._played(positions)), now)
        return chunk_id

    def _played(self, positions: np.ndarray) -> int:
        """How many of a chunk's actions play before the next chunk."""
        return min(self.execute_steps, len(positions))

    def _start(self, running: _Running, now: float) -> None:
        self._active = running
        self._switch_time = now
        self._fresh_switch = True
        if self.ensemble:
            self._history.append(running)

    def clear(self) -> None:
        """Drop every chunk (e-stop, watchdog): a later chunk starts from a hold."""
        self._active = self._previous = None
        self._pending = []
        self._history = []
        self._switch_time = None

    def _finished(self, now: float) -> bool:
        active = self._active
        return active is None or (now - active.start) / self.dt + 0.5 >= active.played

    def _activate_pending(self, now: float) -> None:
        if self._pending and self._finished(now):
            chunk_id, positions, stamp = self._pending.pop()
            self._previous = None
            self._start(_Running(chunk_id, positions, start=now, stamp=stamp,
                                 played=self._played(positions)), now)

    def _ensembled(self, now: float) -> np.ndarray:
        """The weighted mean of every kept chunk's action for `now` (oldest first). Past the
        active chunk's last played action the mean for that action is held."""
        active = self._active
        now = min(now, active.start + (active.played - 1) * self.dt)
        self._history = [run for run in self._history
                         if (now - run.start) / self.dt + 0.5 < len(run.positions)]
        votes = [sample(run.positions, run.start, now, self.dt, self.interpolate)[0]
                 for run in self._history]
        weights = np.exp(-self.ensemble_decay * np.arange(len(votes)))
        return np.tensordot(weights / weights.sum(), np.asarray(votes), axes=1)

    def target(self, now: float) -> ExecTarget | None:
        """The desired command at `now`, or None when no chunk has arrived (hold)."""
        if self.mode == 'sync':
            self._activate_pending(now)
        active = self._active
        if active is None:
            return None
        position, index = sample(active.positions[:active.played], active.start, now, self.dt,
                                 self.interpolate)
        if self.ensemble:
            position = self._ensembled(now)
        holding = self._finished(now)
        boundary = self._fresh_switch
        self._fresh_switch = False
        blend = not self.ensemble and self.blend_steps > 0   # an ensemble needs no cross-fade
        if self.mode == 'async' and self._previous is not None and blend:
            tick = int(np.floor((now - self._switch_time) / self.dt + 0.5))
            if tick < self.blend_steps:
                weight = (tick + 1) / (self.blend_steps + 1)
                previous = self._previous
                old, _ = sample(previous.positions[:previous.played], previous.start, now,
                                self.dt, self.interpolate)
                position = (1.0 - weight) * old + weight * position
                boundary = True
            else:
                self._previous = None
        return ExecTarget(np.array(position), active.chunk_id, index, boundary, holding)

    def remaining(self, now: float) -> int:
        """Actions not yet commanded, queued chunks included (0 when holding or idle)."""
        queued = sum(self._played(positions) for _, positions, _ in self._pending)
        active = self._active
        if active is None:
            return queued
        index = int(np.floor((now - active.start) / self.dt + 0.5))
        return int(max(0, active.played - 1 - index)) + queued


@dataclass
class StepStats:
    """Largest step between consecutive commands, overall and at chunk boundaries."""
    max_step: float = 0.0
    max_boundary_step: float = 0.0
    boundaries: int = 0
    boundary_steps: list = field(default_factory=list)   # largest step of each boundary
    joint_max: np.ndarray | None = None                    # largest step per joint
    _last: np.ndarray | None = None
    _in_boundary: bool = False

    def add(self, command, boundary: bool) -> float:
        command = np.asarray(command, dtype=np.float64)
        delta = np.zeros_like(command) if self._last is None else np.abs(command - self._last)
        step = float(np.max(delta))
        self.joint_max = delta if self.joint_max is None else np.maximum(self.joint_max, delta)
        self._last = command.copy()
        self.max_step = max(self.max_step, step)
        if boundary:
            if not self._in_boundary:
                self.boundaries += 1
                self.boundary_steps.append(0.0)
            self.boundary_steps[-1] = max(self.boundary_steps[-1], step)
            self.max_boundary_step = max(self.max_boundary_step, step)
        self._in_boundary = boundary
        return step
