"""Start a graph's nodes as separate processes on loopback (the pip CLI's `ros2 launch`).

Used by the CLI, the tests and the benchmarks, so every ROS process they start gets its
environment from cosmos_policy_ros.rosenv.loopback_env.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.rosenv import loopback_env


class NodeProcess:
    """One node in its own process, logging to <log_dir>/<name>.log."""

    def __init__(self, spec: NodeSpec, env: dict, log_dir: Path):
        self.spec = spec
        log_dir.mkdir(parents=True, exist_ok=True)
        label = spec.full_name.strip('/').replace('/', '.')
        self.log_path = log_dir / f'{label}.log'
        self._log = open(self.log_path, 'ab')
        command = [sys.executable, '-m', 'cosmos_policy_ros.run_node', spec.executable,
                   *spec.ros_args()]
        self.popen = subprocess.Popen(command, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors='replace').splitlines()
        return '\n'.join(text[-lines:])

    def close(self) -> None:
        self._log.close()


class TerminatedError(SystemExit):
    """SIGTERM reached a launcher (`docker stop`, systemd, `timeout`): unwinds it like Ctrl-C."""

    def __init__(self):
        super().__init__(128 + signal.SIGTERM)


def _raise_terminated(signum, frame) -> None:
    raise TerminatedError()


class GraphProcesses:
    """Context manager: start NodeSpecs in order, stop them in reverse (SIGINT, then SIGKILL).

    Inside the `with`, SIGTERM to the launcher raises TerminatedError (a SystemExit, status 143)
    in its main thread, so the launcher's own cleanup runs and its nodes are stopped in order.
    By default SIGTERM would end the launcher at once and leave the nodes to notice the orphaning
    (run_node), with no ordered shutdown: the recorder closing its bag, the controller holding.
    """

    def __init__(self, specs: Iterable[NodeSpec], log_dir: str | Path,
                 domain_id: int | None = None, extra_env: dict | None = None):
        self.specs = list(specs)
        self.log_dir = Path(log_dir)
        self.env = loopback_env(domain_id)
        self.env.update(extra_env or {})
        self.domain_id = int(self.env['ROS_DOMAIN_ID'])
        self.processes: list = []
        self._sigterm = None              # the handler to restore, if we installed ours

    def __enter__(self) -> 'GraphProcesses':
        if threading.current_thread() is threading.main_thread():   # signal handlers live there
            self._sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            for spec in self.specs:
                self.processes.append(NodeProcess(spec, self.env, self.log_dir))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def by_name(self, name: str) -> NodeProcess:
        for proc in self.processes:
            if proc.spec.name == name:
                return proc
        raise KeyError(name)

    def dead(self) -> list:
        """Processes that exited, with their log tails (to report, never to ignore)."""
        return [proc for proc in self.processes if not proc.alive]

    def check_alive(self) -> None:
        dead = self.dead()
        if dead:
            details = '\n'.join(f'--- {p.spec.full_name} exited with {p.popen.returncode}:\n'
                                f'{p.log_tail()}' for p in dead)
            raise RuntimeError(f'{len(dead)} node(s) exited:\n{details}')

    def stop(self, timeout: float = 10.0) -> None:
        if self._sigterm is not None:
            # A second SIGTERM must not abort the stop half-way (and orphan the rest).
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc in reversed(self.processes):
            proc.signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for proc in reversed(self.processes):
            if proc.wait(max(0.1, deadline - time.monotonic())) is None:
                proc.signal(signal.SIGKILL)
                proc.wait(5.0)
            proc.close()
        self.processes = []
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None
