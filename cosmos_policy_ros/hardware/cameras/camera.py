"""Camera ABC: a named read thread, frame + capture time under a lock, drop counting, reconnect.

Backends implement three hooks: `_open` (open the device and verify that size/fps took
effect, cleaning up on failure), `_grab` (block until the next frame, return it as HxWx3 uint8
RGB, or None for a failed read; raise CameraError when the device is gone; raise
EndOfStream when a finite source ends) and `_close`. Everything else lives here, once.
"""
import abc
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from cosmos_policy_ros.hardware.cameras.configs import CameraConfig


class CameraError(ConnectionError):
    """The device is missing, refused the requested mode, or stopped delivering frames."""


class EndOfStream(Exception):
    """A finite source (a video file without loop) has no more frames."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray      # HxWx3 uint8 RGB
    captured_ns: int       # time.monotonic_ns() right after the device delivered the frame
    index: int             # 1-based count of frames delivered since connect

    def age_s(self, now_ns: int | None = None) -> float:
        return ((time.monotonic_ns() if now_ns is None else now_ns) - self.captured_ns) / 1e9


@dataclass(frozen=True)
class CameraStats:
    connected: bool = False
    frames: int = 0          # frames delivered
    dropped: int = 0         # frames missing from the stream: capture gaps beyond 1.5 periods
    failed_reads: int = 0    # reads that returned no (or a wrongly sized) frame
    reconnects: int = 0      # successful reopenings after the device went away
    fps: float = 0.0         # measured over the last second
    finished: bool = False   # a finite source ended
    last_error: str = ''


class Camera(abc.ABC):
    """connect / read / async_read(timeout) / read_latest(max_age) / disconnect."""

    def __init__(self, config: CameraConfig):
        self.config = config
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._latest: Frame | None = None
        self._last_returned = 0          # index of the last frame async_read handed out
        self._stats = CameraStats()
        self._recent_ns = deque(maxlen=max(2, int(config.fps * 2) + 2))
        self._previous_ns: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_now = False

    # ---- backend hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Open and verify the device; on failure release everything and raise CameraError."""

    @abc.abstractmethod
    def _grab(self) -> np.ndarray | None:
        """Next frame as HxWx3 uint8 RGB; None = failed read; CameraError = device gone."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the device (idempotent)."""

    def __str__(self) -> str:
        return f'{type(self).__name__}({self.config.name})'

    # ---- public surface ------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._open_now

    def connect(self, background: bool = True) -> None:
        """Open the device, check one frame's size, and (by default) start the read thread."""
        if self._open_now:
            raise CameraError(f'{self}: already connected; call disconnect() first')
        try:
            self._open()
            self._open_now = True
            first = None
            for _ in range(self.config.failed_reads_to_reconnect):   # some UVC cameras warm up
                first = self._grab()
                if first is not None:
                    break
            if first is None:
                raise CameraError(f'{self}: opened but delivered no frame; check the cable '
                                  'and that no other program holds the device')
            self._check_size(first)
        except EndOfStream:
            self._open_now = False
            self._close()
            self._update(last_error=f'{self}: the source has no frames')
            raise CameraError(f'{self}: the source has no frames') from None
        except BaseException as exc:
            self._open_now = False
            self._close()
            self._update(last_error=str(exc))
            raise
        self._stop.clear()
        self._update(connected=True, finished=False, last_error='')
        self._store(first)
        if background:
            self._thread = threading.Thread(target=self._read_loop,
                                            name=f'camera-read-{self.config.name}', daemon=True)
            self._thread.start()

    def read(self) -> Frame:
        """Capture one frame now (no read thread running: connect(background=False))."""
        self._require_open()
        if self._thread is not None:
            raise CameraError(f'{self}: the read thread owns the device; use async_read() or '
                              'read_latest()')
        image = self._grab()
        if image is None:
            self._update(failed_reads=self._stats.failed_reads + 1)
            raise CameraError(f'{self}: read failed; check the cable and the device')
        self._check_size(image)
        return self._store(image)

    def async_read(self, timeout: float = 1.0) -> Frame:
        """The next frame not yet returned by async_read, waiting up to `timeout` seconds."""
        self._require_open()
        deadline = time.monotonic() + timeout
        with self._new_frame:
            while self._latest is None or self._latest.index <= self._last_returned:
                if self._stats.finished:
                    raise EOFError(f'{self}: the source ended (loop is off)')
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = ('connected' if self._stats.connected
                             else f'disconnected, reconnecting: {self._stats.last_error}')
                    raise TimeoutError(f'{self}: no new frame within {timeout:.2f} s ({state})')
                self._new_frame.wait(remaining)
            self._last_returned = self._latest.index
            return self._latest

    def read_latest(self, max_age: float) -> Frame:
        """The newest frame without waiting; TimeoutError if it is older than max_age seconds."""
        self._require_open()
        with self._lock:
            frame = self._latest
        if frame is None:
            raise TimeoutError(f'{self}: no frame captured yet')
        age = frame.age_s()
        if age > max_age:
            raise TimeoutError(f'{self}: latest frame is {age * 1000:.0f} ms old (max '
                               f'{max_age * 1000:.0f} ms); the camera stalled or disconnected: '
                               f'{self.stats().last_error or "no error reported"}')
        return frame

    def stats(self) -> CameraStats:
        with self._lock:
            recent = list(self._recent_ns)
            stats = self._stats
        now = time.monotonic_ns()
        recent = [t for t in recent if now - t <= 1_000_000_000]
        fps = (len(recent) - 1) / ((recent[-1] - recent[0]) / 1e9) if len(recent) > 1 else 0.0
        return replace(stats, fps=fps)

    def disconnect(self) -> None:
        self._stop.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close()
        self._open_now = False
        self._update(connected=False)

    def __enter__(self) -> 'Camera':
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # ---- internals -----------------------------------------------------------------------
    def _require_open(self) -> None:
        if not self._open_now:
            raise CameraError(f'{self}: not connected; call connect() first')

    def _update(self, **changes) -> None:
        with self._lock:
            self._stats = replace(self._stats, **changes)

    def _check_size(self, image: np.ndarray) -> None:
        expected = (self.config.height, self.config.width, 3)
        if image.shape != expected or image.dtype != np.uint8:
            raise CameraError(f'{self}: frame is {image.shape} {image.dtype}, expected '
                              f'{expected} uint8; set the device to {self.config.width}x'
                              f'{self.config.height} (frames are never resized here)')

    def _store(self, image: np.ndarray) -> Frame:
        now = time.monotonic_ns()
        with self._new_frame:
            dropped = self._stats.dropped
            if self._previous_ns is not None:
                periods = (now - self._previous_ns) / 1e9 / self.config.period_s
                if periods > 1.5:
                    dropped += round(periods) - 1
            self._previous_ns = now
            self._recent_ns.append(now)
            index = self._stats.frames + 1
            frame = Frame(image=image, captured_ns=now, index=index)
            self._latest = frame
            self._stats = replace(self._stats, frames=index, dropped=dropped)
            self._new_frame.notify_all()
        return frame

    def _read_loop(self) -> None:
        consecutive_failures = 0
        while not self._stop.is_set():
            try:
                image = self._grab()
                if image is not None:
                    self._check_size(image)
            except EndOfStream:
                self._update(finished=True)
                with self._new_frame:
                    self._new_frame.notify_all()
                return
            except CameraError as exc:
                self._update(failed_reads=self._stats.failed_reads + 1, last_error=str(exc))
                self._reconnect(str(exc))
                consecutive_failures = 0
                continue
            if image is None:
                consecutive_failures += 1
                self._update(failed_reads=self._stats.failed_reads + 1,
                             last_error=f'{self}: read failed')
                if consecutive_failures >= self.config.failed_reads_to_reconnect:
                    self._reconnect(f'{self}: {consecutive_failures} reads failed in a row')
                    consecutive_failures = 0
                continue
            consecutive_failures = 0
            self._store(image)

    def _reconnect(self, reason: str) -> None:
        """Close, then reopen with exponential backoff until it works or we are stopped."""
        self._update(connected=False, last_error=reason)
        self._close()
        delay = self.config.reconnect_backoff_s
        while not self._stop.wait(delay):
            try:
                self._open()
            except CameraError as exc:
                self._update(last_error=str(exc))
                delay = min(delay * 2.0, self.config.reconnect_backoff_max_s)
                continue
            with self._lock:
                self._previous_ns = None  # the outage is a reconnect, not dropped frames
            self._update(connected=True, reconnects=self._stats.reconnects + 1)
            return
