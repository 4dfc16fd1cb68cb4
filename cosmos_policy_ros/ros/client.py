"""GraphClient: a node spinning in a background thread, with plain blocking methods.

Used by CLI jobs (record, run-policy), benchmarks and tests to watch topics, publish and call
services on a running graph with bounded waits (nav2_simple_commander-style facade).
"""
import threading
import time
from collections import deque

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data

from cosmos_policy_ros.ros.stamps import to_ns


class Recorded:
    """Messages of one subscription with their receive times (monotonic seconds)."""

    def __init__(self, maxlen: int):
        self.items = deque(maxlen=maxlen)
        self.lock = threading.Lock()
        self.count = 0

    def add(self, msg) -> None:
        with self.lock:
            self.items.append((time.monotonic(), msg))
            self.count += 1

    def messages(self) -> list:
        with self.lock:
            return [msg for _, msg in self.items]

    def timed(self) -> list:
        with self.lock:
            return list(self.items)

    def latest(self):
        with self.lock:
            return self.items[-1][1] if self.items else None

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


def newest_diagnostic_value(diagnostics: Recorded, key: str) -> str | None:
    """The value of `key` in the newest /diagnostics status that reports it (None: none yet)."""
    for array in reversed(diagnostics.messages()):
        for status in array.status:
            for item in status.values:
                if item.key == key:
                    return item.value
    return None


def diagnostic_counts(diagnostics: Recorded, key: str) -> list[tuple[int, int]]:
    """(header stamp ns, int value) of `key` in every /diagnostics array received, in order:
    a node's counter sampled on its own clock, so two entries bound an interval."""
    return [(to_ns(array.header.stamp), int(item.value))
            for array in diagnostics.messages() for status in array.status
            for item in status.values if item.key == key]


class GraphClient:
    def __init__(self, name: str = 'graph_client', use_sim_time: bool = False):
        self._own_context = not rclpy.ok()
        if self._own_context:
            rclpy.init()
        self.node = rclpy.create_node(name, parameter_overrides=[
            rclpy.parameter.Parameter('use_sim_time', value=use_sim_time)])
        # One thread: the callbacks only store messages and resolve futures. The client's
        # blocking methods run on the caller's thread. rclpy's MultiThreadedExecutor (4 threads
        # on 2 cores) took so much of the GIL on one CI machine that 0.9 MB camera frames at
        # 20-30 Hz arrived at 5-6 Hz and a feeding test thread published a third of its rate.
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name=f'{name}-spin',
                                        daemon=True)
        self._thread.start()
        self.records = {}

    def subscribe(self, topic: str, msg_type, maxlen: int = 10000, sensor: bool = False,
                  callback=None, latched: bool = False) -> Recorded:
        record = Recorded(maxlen)

        def on_message(msg):
            record.add(msg)
            if callback is not None:
                callback(msg)

        qos = qos_profile_sensor_data if sensor else QoSProfile(depth=50)
        if latched:
            qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(msg_type, topic, on_message, qos)
        self.records[topic] = record
        return record

    def publisher(self, topic: str, msg_type, depth: int = 10):
        return self.node.create_publisher(msg_type, topic, depth)

    def wait_for(self, predicate, timeout: float, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())

    def wait_for_messages(self, topic: str, count: int, timeout: float) -> bool:
        record = self.records[topic]
        return self.wait_for(lambda: record.count >= count, timeout)

    def call(self, service: str, srv_type, request=None, timeout: float = 10.0):
        """Call a service; raises TimeoutError naming the service if it is absent or slow."""
        client = self.node.create_client(srv_type, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {service} not available after {timeout:.0f} s')
            future = client.call_async(request if request is not None else srv_type.Request())
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise TimeoutError(f'service {service} did not answer within {timeout:.0f} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node: str, values: dict, timeout: float = 10.0) -> None:
        """Set parameters of another node (rcl_interfaces/SetParameters); raises ValueError
        with the node's reason when one is refused."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(parameters=[
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        response = self.call(f'{node}/set_parameters', SetParameters, request, timeout)
        refused = [f'{name}: {result.reason}' for name, result in zip(values, response.results)
                   if not result.successful]
        if refused:
            raise ValueError(f'{node} refused parameters: {"; ".join(refused)}')

    def close(self) -> None:
        # The spin thread must be out of the executor before the node and context go away,
        # else it can touch an invalid RCL context while exiting.
        self._executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
