"""When the policy (or planner) starts its next inference (ROS-free).

The controller publishes its status (actions remaining in its chunk, the stamp of the last
chunk it received, its state). Sync: query when the chunk is done (remaining 0), as the
reference does. Async: query while the chunk still runs, once remaining <= the inference
latency in steps plus a margin, so the next chunk lands before this one ends.
"""
import json
import math
from dataclasses import asdict, dataclass, field

from cosmos_policy_ros.control.chunks import DT, MODES

HOLD_STATES = ('estop',)          # states in which a new chunk would be refused


@dataclass(frozen=True)
class ControllerStatus:
    remaining: int                # actions of the active chunk not yet commanded
    last_chunk_stamp: float       # stamp of the last chunk received (accepted or not), -1: none
    state: str                    # idle | running | holding | watchdog | estop
    reason: str = ''
    stamp: float = 0.0            # controller clock when published
    counts: dict = field(default_factory=dict)   # gate/chunk counters for dashboards

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> 'ControllerStatus':
        data = json.loads(text)
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass
class QueryTrigger:
    mode: str = 'sync'
    trigger_steps: int = -1       # async: query when remaining <= this; -1: from latency
    margin: float = 0.2           # async auto trigger: seconds added to the latency estimate
    ack_timeout: float = 3.0      # re-query if the controller never saw a published chunk
    dt: float = DT
    finish_first: bool = False    # sync: wait until the chunk's last action has run (lockstep)
    latency: float | None = None  # moving estimate of inference latency [s]
    _awaiting: float | None = None
    _published_at: float = 0.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'QueryTrigger.mode: {self.mode!r} is not one of {list(MODES)}')

    def steps_ahead(self) -> int:
        if self.mode == 'sync':
            return 0
        if self.trigger_steps >= 0:
            return self.trigger_steps
        latency = self.latency if self.latency is not None else 1.0
        return math.ceil((latency + self.margin) / self.dt)

    def should_query(self, status: ControllerStatus | None, now: float) -> bool:
        if status is None or status.state in HOLD_STATES:
            return False
        if self._awaiting is not None:
            acknowledged = status.last_chunk_stamp >= self._awaiting - 1e-9
            if not acknowledged and now - self._published_at < self.ack_timeout:
                return False
            self._awaiting = None
        if self.finish_first and status.state == 'running':
            return False
        return status.remaining <= self.steps_ahead()

    def published(self, stamp: float, now: float, latency: float) -> None:
        self._awaiting, self._published_at = stamp, now
        self.latency = latency if self.latency is None else 0.7 * self.latency + 0.3 * latency
