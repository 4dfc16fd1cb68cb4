"""Watchdog over input freshness (ROS-free): engaged while any watched source is late.

Each source (a camera, a joint-state stream, the chunk stream) has its own timeout. A source
that has never been seen counts as late only after `grace` seconds from the first check, so a
graph that is still starting up holds position instead of flagging an error at once.
"""
from dataclasses import dataclass, field


@dataclass
class Watchdog:
    timeouts: dict                       # source -> max age [s]
    grace: float = 5.0
    _last: dict = field(default_factory=dict)
    _started: float | None = None
    engaged: bool = False
    engagements: int = 0
    reasons: tuple = ()
    late: tuple = ()                     # names of the late sources

    def __post_init__(self):
        for source, timeout in self.timeouts.items():
            if not timeout > 0:
                raise ValueError(f'Watchdog timeout for {source!r} must be positive, got '
                                 f'{timeout}')

    def feed(self, source: str, stamp: float) -> None:
        """Record the newest time `source` was seen (message stamp or receive time)."""
        if source not in self.timeouts:
            raise KeyError(f'watchdog source {source!r} is not watched; known: '
                           f'{sorted(self.timeouts)}')
        previous = self._last.get(source)
        if previous is None or stamp > previous:
            self._last[source] = stamp

    def forget(self, source: str) -> None:
        self._last.pop(source, None)

    def check(self, now: float) -> bool:
        """Update and return `engaged`; `reasons` names each late source and its age."""
        if self._started is None:
            self._started = now
        reasons, late = [], []
        for source, timeout in self.timeouts.items():
            last = self._last.get(source)
            if last is None:
                if now - self._started > self.grace:
                    reasons.append(f'{source}: nothing received')
                    late.append(source)
            elif now - last > timeout:
                reasons.append(f'{source}: {now - last:.2f} s old (timeout {timeout} s)')
                late.append(source)
        engaged = bool(reasons)
        if engaged and not self.engaged:
            self.engagements += 1
        self.engaged, self.reasons, self.late = engaged, tuple(reasons), tuple(late)
        return engaged
