"""Run a node executable by name: `python -m cosmos_policy_ros.run_node sim_robot --ros-args`."""
import importlib
import sys

from cosmos_policy_ros.executables import NODES


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in NODES:
        sys.exit(f'usage: python -m cosmos_policy_ros.run_node NAME [--ros-args ...]; '
                 f'NAME is one of {sorted(NODES)}')
    module_name, function = NODES[sys.argv[1]].split(':')
    sys.argv = [sys.argv[1]] + sys.argv[2:]
    getattr(importlib.import_module(module_name), function)()


if __name__ == '__main__':
    main()
