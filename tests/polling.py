"""Waiting in tests for something another thread or process does."""
import time


def eventually(predicate, timeout: float = 2.0, period: float = 0.01) -> bool:
    """Poll `predicate` every `period` s until it holds or `timeout` s pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(period)
    return predicate()
