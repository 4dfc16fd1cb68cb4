"""`cosmos-policy-ros up GRAPH [arg:=value ...]`: start a graph's nodes as processes."""
import time
from pathlib import Path

from cosmos_policy_ros.graphs import build_graph, get_graph
from cosmos_policy_ros.procs import GraphProcesses


def parse_overrides(items) -> dict:
    overrides = {}
    for item in items:
        if ':=' not in item:
            raise SystemExit(f'argument {item!r}: expected name:=value (as with ros2 launch)')
        key, value = item.split(':=', 1)
        overrides[key] = value
    return overrides


def add_arguments(parser) -> None:
    parser.add_argument('graph', help='graph name, e.g. record_demos or aloha_policy')
    parser.add_argument('overrides', nargs='*', metavar='arg:=value', help='graph arguments')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop after this many seconds (0: run until Ctrl-C)')
    parser.add_argument('--log-dir', default='runs/logs', help='per-node log files')
    parser.add_argument('--dry-run', action='store_true', help='print the node list and exit')


def run(args) -> int:
    try:
        graph = get_graph(args.graph)
        specs = build_graph(args.graph, parse_overrides(args.overrides))
    except (KeyError, ValueError) as exc:
        print(f'error: {exc.args[0]}')
        return 2
    for spec in specs:
        print(f'{spec.full_name:32s} {spec.executable:16s} {dict(spec.parameters)}')
    if args.dry_run:
        return 0
    log_dir = Path(args.log_dir) / graph.name
    with GraphProcesses(specs, log_dir) as procs:
        print(f'started {len(specs)} nodes on ROS_DOMAIN_ID={procs.domain_id} (loopback only); '
              f'logs in {log_dir}')
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
                procs.check_alive()
        except RuntimeError as exc:
            print(f'error: {exc}')
            return 1
    return 0
