"""`cosmos-policy-ros graphs`: list graphs and their arguments."""
from cosmos_policy_ros.graphs import GRAPHS


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    for graph in GRAPHS.values():
        print(f'{graph.name}: {graph.description}')
        for name, arg in graph.args.items():
            choices = f' {list(arg.choices)}' if arg.choices else ''
            print(f'    {name}:={arg.default}  {arg.description}{choices}')
    return 0
