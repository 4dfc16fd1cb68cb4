"""The trained checkpoints under models/<name>/: complete, small enough to commit, loadable by
name, and predicting from a real sim observation in the deployed units (ROS-free)."""
import numpy as np
import pytest
import yaml

from cosmos_policy_ros.model.checkpoint import CheckpointError, resolve_checkpoint, shipped_models
from cosmos_policy_ros.paths import share_path

SHIPPED = shipped_models()
MAX_BYTES = 40 * 2 ** 20          # the repository's limit for committed checkpoints


def test_the_trained_sim_policy_ships():
    assert 'sim_transfer_cube' in SHIPPED


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_model_folder_is_complete(name):
    folder = share_path('models', name)
    for file in ('model.safetensors', 'config.yaml', 'dataset_statistics.json', 'README.md'):
        assert (folder / file).is_file(), f'models/{name}/{file} is missing'
    assert (folder / 'model.safetensors').stat().st_size <= MAX_BYTES
    config = yaml.safe_load((folder / 'config.yaml').read_text())
    # A preset shipped beside it (models/<preset>.yaml), not an ad-hoc one.
    assert share_path('models', f"{config['preset']['name']}.yaml").is_file()
    assert config['extra']['kind'] == 'cosmos-policy'
    # The model card names where its figures come from.
    card = (folder / 'README.md').read_text()
    assert 'cosmos-policy-ros eval' in card and 'cosmos-policy-ros train' in card


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(CheckpointError, match='sim_transfer_cube'):
        resolve_checkpoint('no_such_model')


def first_observation(task: str, policy):
    """The observation at the start of unseen episode seed 1000 of `task`, as deployed."""
    from cosmos_policy_ros.evaluation.closed_loop import ClosedLoop, policy_query
    loop = ClosedLoop(task, policy_query(policy, num_steps=1))
    try:
        loop.sim.reset(1000)
        return loop.observe()
    finally:
        loop.sim.close()


@pytest.mark.usefixtures('one_torch_thread')
def test_sim_transfer_cube_predicts_a_chunk_that_starts_at_the_robot():
    """From the first frame of an unseen episode the trained policy's chunk, value and future
    proprio come back finite, in robot units, inside the range of the training actions."""
    from cosmos_policy_ros.model.policy import CosmosPolicy
    policy = CosmosPolicy.from_config(checkpoint='sim_transfer_cube')
    observation = first_observation('transfer_cube', policy)
    out = policy.predict(observation, num_steps=5, seeds=0)
    chunk = out.actions[0]
    assert chunk.shape == (50, 14) and np.all(np.isfinite(chunk))
    stats = policy.statistics.actions
    span = stats.max - stats.min
    assert np.all(chunk >= stats.min - 0.25 * span) and np.all(chunk <= stats.max + 0.25 * span)
    assert np.all(np.isfinite(out.future_proprio)) and out.future_proprio.shape == (1, 14)
    assert np.isfinite(out.value[0]) and -0.5 <= float(out.value[0]) <= 1.5


@pytest.mark.usefixtures('one_torch_thread')
@pytest.mark.parametrize('policy_name, task', [('sim_aloha', 'insertion'),
                                               ('sim_insertion', 'insertion'),
                                               ('sim_transfer_cube', 'transfer_cube')])
def test_shipped_planning_model_scores_its_policy_candidates(policy_name, task):
    """Each shipped planning model (V(s'), <policy>_planning) plans for the shipped policy it
    was trained from: same statistics, so the raw action latent means the same; every
    candidate gets finite value samples in [0, 1] and the chosen chunk is one of them."""
    from cosmos_policy_ros.model.policy import CosmosPolicy
    from cosmos_policy_ros.planning.best_of_n import BestOfN, PlanningConfig
    policy = CosmosPolicy.from_config(checkpoint=policy_name)
    planner_model = CosmosPolicy.from_config(checkpoint=f'{policy_name}_planning')
    assert policy.statistics.to_json_dict() == planner_model.statistics.to_json_dict()
    observation = first_observation(task, policy)
    plan = BestOfN(policy, planner_model, PlanningConfig(
        num_candidates=2, action_steps=2, future_steps=(1,), value_steps=(1, 2))).plan(
            observation, seed=0)
    assert plan.samples.shape == (2, 2) and np.all(np.isfinite(plan.samples))
    assert np.all((plan.samples >= -0.05) & (plan.samples <= 1.05))
    assert plan.chosen in (0, 1) and np.array_equal(plan.chunk, plan.actions[plan.chosen])
