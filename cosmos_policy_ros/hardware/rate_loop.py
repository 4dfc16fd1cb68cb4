"""A function called at a fixed rate in its own thread, on absolute deadlines. ROS-free.

    loop = RateLoop(step, rate_hz=100.0, name='follower_left-bus').start()
    ...
    loop.stop()                   # joins; `step` is not running afterwards

The arm driver runs its bus cycle here rather than on an rclpy timer: dispatching a 100 Hz timer
through rclpy's executor cost about 2.3 ms of CPU per cycle (twice the bus read+write itself),
which is what capped four drivers on two cores near 41 Hz. The thread sleeps until the next
deadline (no busy-waiting); a late cycle is followed at once by the next, and more than one
period late the schedule restarts from now instead of bursting to catch up.
"""
import threading
import time


class RateLoop:
    def __init__(self, step, rate_hz: float, name: str = 'rate-loop'):
        if not rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {rate_hz}')
        self.step = step
        self.period_s = 1.0 / rate_hz
        self.name = name
        self.late = 0                     # deadlines missed by more than one period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> 'RateLoop':
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            self.step()
            deadline += self.period_s
            wait = deadline - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            elif wait < -self.period_s:
                self.late += 1
                deadline = time.monotonic()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self._thread = None
