"""`cosmos-policy-ros`: the pip-installed front door (no system ROS needed).

Each subcommand lives in cosmos_policy_ros/commands/<name>.py with `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their command runs.
"""
import argparse
import importlib
import sys

COMMANDS = {
    'up': ('start a node graph (same node list as launch/<graph>.launch.py)', 'up'),
    'graphs': ('list the graphs and their arguments', 'graphs'),
    'record': ('record scripted demonstrations in sim through the ROS graph, then export',
               'record'),
    'export': ('export recorded episode bags to ALOHA HDF5 + dataset statistics', 'export'),
    'train': ('train or fine-tune a policy on recorded episodes (latent cache, DDP/FSDP)',
              'train'),
    'train-vae': ('train a small preset\'s VAE on recorded camera frames', 'train_vae'),
    'ship': ('a training checkpoint -> a model directory loadable by name (models/<name>)',
             'ship'),
    'eval': ('closed-loop success of a policy on the sim, through the ROS graph or in-process',
             'eval'),
    'probe': ('does a policy follow the object? its first chunk against the scripted expert',
              'probe'),
    'run-policy': ('run the policy graph on the simulated ALOHA and report rates/latency',
                   'run_policy'),
    'serve': ('serve the policy over openpi websocket + msgpack and /act HTTP JSON (no ROS)',
              'serve'),
    'build-engine': ('export the policy to ONNX and build its TensorRT/onnxruntime engines '
                     'into the engine cache', 'build_engine'),
    'calibrate': ('record gripper open/close and joint ranges, write calibration/<robot>.yaml',
                  'calibrate'),
    'udev-rules': ('write udev rules for the U2D2 adapters (latency_timer 1)', 'udev_rules'),
    'dashboard': ('operator dashboard in a browser: the live graph or a recorded bag',
                  'dashboard'),
}


def build_parser(argv=None) -> argparse.ArgumentParser:
    chosen = (sys.argv[1:] if argv is None else list(argv))[:1]
    parser = argparse.ArgumentParser(prog='cosmos-policy-ros', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, (help_text, module) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module)
        # Arguments are added lazily by the chosen command only (keeps --help fast).
        if name in chosen:
            _module(module).add_arguments(command)
    return parser


def _module(name: str):
    return importlib.import_module(f'cosmos_policy_ros.commands.{name}')


def parse(argv) -> argparse.Namespace:
    """The command line, with key=value overrides also accepted after options
    (`train CONFIG --resume optim.steps=5000`), which plain argparse refuses."""
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, 'overrides') and all(
            '=' in item and not item.startswith('-') for item in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f'unrecognized arguments: {" ".join(extra)}')
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    sys.argv = [sys.argv[0]] + argv
    args = parse(argv)
    try:
        return int(_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
