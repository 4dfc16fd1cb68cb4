"""The launch files and the pip CLI start the same graph: same node list, same arguments."""
import argparse
import contextlib
import importlib.util
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from cosmos_policy_ros import cli
from cosmos_policy_ros.graph import to_text
from cosmos_policy_ros.graphs import build_graph, get_graph
from cosmos_policy_ros.launch_util import launch_specs
from cosmos_policy_ros.params import check_values
from cosmos_policy_ros.schemas.controller import CONTROLLER
from cosmos_policy_ros.schemas.policy import PLANNER, POLICY
from cosmos_policy_ros.schemas.recorder import RECORDER
from cosmos_policy_ros.schemas.sim_robot import SIM_ROBOT

LAUNCH_DIR = Path(__file__).resolve().parent.parent / 'launch'

CASES = [
    ('aloha_policy', {}),
    ('aloha_policy', {'planning': 'true', 'mode': 'async', 'num_steps': '3',
                      'planning_checkpoint': '/tmp/plan.pt', 'aggregation': 'lcb'}),
    ('aloha_policy', {'task': 'insertion', 'preset': 'small', 'device': 'cuda',
                      'dtype': 'bfloat16', 'checkpoint': '/tmp/policy.pt'}),
    ('aloha_policy', {'use_sim': 'false', 'calibration': 'aloha_stationary'}),
    ('aloha_policy', {'use_sim': 'false', 'calibration': 'aloha_stationary',
                      'planning': 'true'}),
    ('record_demos', {}),
    ('record_demos', {'task': 'insertion', 'seed': '7'}),
    # driver:= (docs/hardware.md): our drivers, the Interbotix bridge, or none (docker compose)
    ('hardware', {}),
    ('hardware', {'driver': 'interbotix', 'calibration': 'aloha_stationary'}),
    ('aloha_policy', {'use_sim': 'false', 'calibration': 'aloha_stationary',
                      'driver': 'interbotix'}),
    ('aloha_policy', {'use_sim': 'false', 'calibration': 'aloha_stationary',
                      'driver': 'external', 'device': 'cuda'}),
    ('record_demos', {'use_sim': 'false', 'calibration': 'aloha_stationary',
                      'driver': 'interbotix'}),
]


def load_launch_module(graph: str):
    path = LAUNCH_DIR / f'{graph}.launch.py'
    spec = importlib.util.spec_from_file_location(f'{graph}_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_dry_run(graph: str, overrides: dict) -> list:
    """(name, executable, parameters) rows printed by `cosmos-policy-ros up --dry-run`."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(['up', graph, *(f'{k}:={v}' for k, v in overrides.items()),
                         '--dry-run'])
    assert code == 0, out.getvalue()
    return [line.split()[:2] for line in out.getvalue().splitlines() if line.startswith('/')]


@pytest.mark.parametrize('graph, overrides', CASES)
def test_launch_file_and_cli_build_the_same_nodes(graph, overrides):
    module = load_launch_module(graph)
    assert module.GRAPH == graph and callable(module.generate_launch_description)
    expected = build_graph(graph, overrides)
    # What the launch file's OpaqueFunction builds, from its launch configurations.
    defaults = {name: arg.default for name, arg in get_graph(graph).args.items()}
    context = SimpleNamespace(launch_configurations={**defaults, **overrides})
    assert launch_specs(module.GRAPH, context) == expected
    rows = cli_dry_run(graph, overrides)
    assert rows == [[spec.full_name, spec.executable] for spec in expected]


SCHEMAS = {'policy': POLICY, 'planner': PLANNER, 'controller': CONTROLLER,
           'sim_robot': SIM_ROBOT, 'recorder': RECORDER}


def test_graph_parameters_match_node_schemas():
    """Every parameter the graph sets is declared by the node (with a valid value)."""
    for graph, overrides in [('aloha_policy', {}), ('aloha_policy', {'planning': 'true'}),
                             ('aloha_policy', {'mode': 'async', 'lockstep': 'true'}),
                             ('record_demos', {})]:
        for spec in build_graph(graph, overrides):
            if spec.executable in SCHEMAS:
                check_values(SCHEMAS[spec.executable], dict(spec.parameters),
                             where=spec.full_name)
                json.dumps(dict(spec.parameters))


def test_a_default_is_declared_once_for_node_graph_and_cli():
    """A node parameter's default, choices and description reach the graph argument and the
    run-policy flag unchanged (graph-only switches and deliberate overrides aside)."""
    from cosmos_policy_ros.commands import run_policy
    graph = get_graph('aloha_policy')
    declared = {}                                  # name -> that parameter in every node
    for schema in (POLICY, PLANNER, CONTROLLER, SIM_ROBOT):
        for param in schema:
            declared.setdefault(param.name, []).append(param)
    derived = [name for name in graph.args if name in declared]
    assert len(derived) >= 25
    for name in derived:
        param = graph.args[name].param
        assert graph.args[name].default == to_text(param.default), name
        assert all(node.default == param.default for node in declared[name]), name
        if name not in ('seed', 'lockstep'):       # the graph's own descriptions
            assert param in declared[name], name
    parser = argparse.ArgumentParser()
    run_policy.add_arguments(parser)
    flags = parser.parse_args([])
    for name in run_policy.FLAGS:
        assert getattr(flags, name) == graph.args[name].param.default, name
    assert (flags.preset, flags.max_chunk_age) == ('tiny', 2.0)
    typed = parser.parse_args(['--max-chunk-age', '3', '--planning', '--mode', 'async'])
    assert (typed.max_chunk_age, typed.planning, typed.mode) == (3.0, True, 'async')
    with pytest.raises(SystemExit):
        parser.parse_args(['--mode', 'fast'])


def test_graph_arguments_are_typed_and_range_checked_by_the_schema():
    specs = {s.executable: s for s in build_graph('aloha_policy', {
        'num_steps': '3', 'max_chunk_age': '5', 'future_steps': '2,4', 'planning': 'true'})}
    assert specs['planner'].parameters['num_steps'] == 3
    assert specs['planner'].parameters['future_steps'] == [2, 4]
    assert specs['controller'].parameters['max_chunk_age'] == 5.0
    assert isinstance(specs['controller'].parameters['max_chunk_age'], float)
    with pytest.raises(ValueError, match=r"num_steps:='0'.*below the minimum 1"):
        build_graph('aloha_policy', {'num_steps': '0'})
    with pytest.raises(ValueError, match=r"max_step_rad:='fast' must be of type float"):
        build_graph('aloha_policy', {'max_step_rad': 'fast'})
    with pytest.raises(ValueError, match='step counts >= 1'):
        build_graph('aloha_policy', {'planning': 'true', 'value_steps': '0,1'})


def test_execute_steps_reaches_the_controller_and_whichever_node_queries():
    """The controller plays that many actions; the policy or planner counts lockstep queries
    by it (control.lockstep.noise_seed), so both must get the same value."""
    for planning in ('false', 'true'):
        specs = {s.executable: s for s in build_graph('aloha_policy', {
            'execute_steps': '25', 'planning': planning})}
        querying = specs['planner' if planning == 'true' else 'policy']
        assert specs['controller'].parameters['execute_steps'] == 25
        assert querying.parameters['execute_steps'] == 25
    with pytest.raises(ValueError, match=r"execute_steps:='51'.*above the maximum 50"):
        build_graph('aloha_policy', {'execute_steps': '51'})


def test_ensemble_reaches_the_controller_only():
    """Temporal ensembling is the controller's (it mixes the chunks it receives); the querying
    node's cadence is execute_steps either way."""
    for planning in ('false', 'true'):
        specs = {s.executable: s for s in build_graph('aloha_policy', {
            'ensemble': 'true', 'ensemble_decay': '0.1', 'execute_steps': '10',
            'planning': planning})}
        controller = specs['controller'].parameters
        assert (controller['ensemble'], controller['ensemble_decay']) == (True, 0.1)
        assert 'ensemble' not in specs['planner' if planning == 'true' else 'policy'].parameters
    assert build_graph('aloha_policy', {})[-1].parameters['ensemble'] is False
    with pytest.raises(ValueError, match=r"ensemble_decay:='-1'.*below the minimum 0"):
        build_graph('aloha_policy', {'ensemble_decay': '-1'})


def test_chunk_smoothing_reaches_the_controller_only():
    for planning in ('false', 'true'):
        specs = {s.executable: s for s in build_graph('aloha_policy', {
            'chunk_smoothing': '7', 'planning': planning})}
        assert specs['controller'].parameters['chunk_smoothing'] == 7
        assert 'chunk_smoothing' not in specs[
            'planner' if planning == 'true' else 'policy'].parameters
    assert build_graph('aloha_policy', {})[-1].parameters['chunk_smoothing'] == 1
    with pytest.raises(ValueError, match=r"chunk_smoothing:='4' is not one of \['1', '3', "):
        build_graph('aloha_policy', {'chunk_smoothing': '4'})


def test_planning_switches_the_controller_input():
    from cosmos_policy_ros import names
    plain = {s.executable: s for s in build_graph('aloha_policy', {})}
    planned = {s.executable: s for s in build_graph('aloha_policy', {'planning': 'true'})}
    assert 'policy' in plain and 'planner' not in plain
    assert 'planner' in planned and 'policy' not in planned
    assert plain['controller'].parameters['chunk_topic'] == names.ACTION_CHUNK_TOPIC
    assert planned['controller'].parameters['chunk_topic'] == names.PLANNED_CHUNK_TOPIC


def test_launch_description_arguments_match_graph():
    pytest.importorskip('launch_ros', reason='launch/launch_ros come with a system ROS 2 '
                        'install, not with the PyPI wheels used here')
    from launch.actions import DeclareLaunchArgument
    for graph in ('aloha_policy', 'record_demos', 'hardware'):
        description = load_launch_module(graph).generate_launch_description()
        declared = {action.name: action.default_value for action in description.entities
                    if isinstance(action, DeclareLaunchArgument)}
        assert set(declared) == set(get_graph(graph).args)


def test_unknown_launch_argument_is_refused_with_the_known_list():
    with pytest.raises(ValueError, match='known'):
        build_graph('aloha_policy', {'planing': 'true'})


def test_rviz_config_parses_and_references_graph_topics():
    import yaml

    from cosmos_policy_ros import names
    config = yaml.safe_load((LAUNCH_DIR.parent / 'rviz' / 'aloha_policy.rviz').read_text())
    displays = config['Visualization Manager']['Displays']
    topics = {d['Topic']['Value'] for d in displays if 'Topic' in d}
    known = ({names.camera_topic(c) for c in names.CAMERAS}
             | {names.future_image_topic(c) for c in names.CAMERAS}
             | {names.POLICY_MARKERS_TOPIC, names.PLANNER_MARKERS_TOPIC,
                names.CONTROLLER_MARKERS_TOPIC})
    assert topics == known
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'world'
