"""Run a node executable by name: `python -m cosmos_policy_ros.run_node sim_robot --ros-args`.

The launcher (procs.GraphProcesses) starts each node in its own session, so a launcher killed
outright (SIGKILL, a CI timeout) cannot take its nodes down with it, and orphaned nodes went on
spinning and loading the CPU. Each node therefore watches its parent and shuts down like on
Ctrl-C when it is re-parented.
"""
import importlib
import os
import signal
import sys
import threading
import time

from cosmos_policy_ros.executables import NODES

PARENT_POLL_S = 0.5
SHUTDOWN_GRACE_S = 5.0


def exit_with_parent(parent_pid: int) -> None:
    """Daemon thread: SIGINT this process once the parent is gone, hard exit if that is
    ignored for SHUTDOWN_GRACE_S."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        print(f'run_node: launcher (pid {parent_pid}) is gone; shutting down', flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(SHUTDOWN_GRACE_S)
        os._exit(1)
    threading.Thread(target=watch, name='exit-with-parent', daemon=True).start()


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in NODES:
        sys.exit(f'usage: python -m cosmos_policy_ros.run_node NAME [--ros-args ...]; '
                 f'NAME is one of {sorted(NODES)}')
    exit_with_parent(os.getppid())
    module_name, function = NODES[sys.argv[1]].split(':')
    sys.argv = [sys.argv[1]] + sys.argv[2:]
    getattr(importlib.import_module(module_name), function)()


if __name__ == '__main__':
    main()
