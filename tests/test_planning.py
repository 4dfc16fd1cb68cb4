"""Best-of-N: aggregation and selection with known values; planner with the real tiny model."""
import numpy as np
import pytest

from cosmos_policy_ros.planning.aggregate import aggregate, select_best
from cosmos_policy_ros.planning.best_of_n import PlanningConfig

SAMPLES = np.array([
    [0.9, 0.9, 0.0, 0.0, 0.0],      # 2/5 above threshold -> majority_mean 0
    [0.3, 0.3, 0.3, 0.0, 0.0],      # 3/5 above -> mean of those = 0.3
    [0.6, 0.2, 0.6, 0.2, 0.6],      # all above -> 0.44; high spread
    [0.4, 0.4, 0.4, 0.4, 0.4],      # steady 0.4
])


def test_majority_mean_follows_the_reference_rule():
    scores = aggregate(SAMPLES, 'majority_mean', threshold=0.05)
    np.testing.assert_allclose(scores, [0.0, 0.3, 0.44, 0.4])
    assert select_best(scores) == 2


def test_mean_and_lcb_pick_differently():
    mean = aggregate(SAMPLES, 'mean')
    np.testing.assert_allclose(mean, SAMPLES.mean(axis=1))
    assert select_best(mean) == 2
    lcb = aggregate(SAMPLES, 'lcb', lcb_k=1.0)
    np.testing.assert_allclose(lcb, np.clip(SAMPLES.mean(1) - SAMPLES.std(1), 0, 1))
    assert select_best(lcb) == 3          # the steady candidate wins under uncertainty


def test_ties_keep_the_base_candidate():
    assert select_best([0.5, 0.5, 0.2]) == 0
    assert select_best([0.0, 0.0, 0.0]) == 0
    assert select_best([0.1, 0.5, 0.5]) == 1
    assert select_best([0.5, 0.2, 0.5], base_index=2) == 2


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match='not one of'):
        aggregate(SAMPLES, 'median')
    with pytest.raises(ValueError, match='non-finite'):
        aggregate(np.array([[np.nan]]))
    with pytest.raises(ValueError, match='candidates, ensemble'):
        aggregate(np.zeros(3))
    with pytest.raises(ValueError, match='value_mode'):
        PlanningConfig(value_mode='v_sas_typo')
    with pytest.raises(ValueError, match='future_steps'):
        PlanningConfig(future_steps=())
    assert PlanningConfig().ensemble_size == 15
    assert PlanningConfig(value_mode='q_sa').ensemble_size == 5


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    """The real tiny CosmosPolicy (random weights) at 64 px images to keep CPU time low."""
    from cosmos_policy_ros.model.policy import CosmosPolicy
    from cosmos_policy_ros.paths import share_path
    text = share_path('models', 'tiny.yaml').read_text().replace('image_size: 224',
                                                                  'image_size: 64')
    preset = tmp_path_factory.mktemp('preset') / 'tiny_64.yaml'
    preset.write_text(text.replace('name: tiny', 'name: tiny_64'))
    return CosmosPolicy.from_config(preset=str(preset),
                                    statistics=share_path('config', 'sim_statistics.json'),
                                    text='minilm')


def observation():
    from cosmos_policy_ros.model.policy import Observation
    from cosmos_policy_ros.names import CAMERAS
    rng = np.random.default_rng(3)
    return Observation(images={c: rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
                               for c in CAMERAS},
                       proprio=np.linspace(-0.5, 0.5, 14), task='transfer the red cube')


@pytest.mark.parametrize('value_mode', ['v_sprime', 'q_sa'])
def test_planner_chooses_the_best_value_with_the_real_tiny_model(tiny_model, value_mode):
    from cosmos_policy_ros.planning.best_of_n import BestOfN
    config = PlanningConfig(num_candidates=3, action_steps=1, future_steps=(1,),
                            value_steps=(1, 2), value_mode=value_mode)
    plan = BestOfN(tiny_model, config=config).plan(observation(), seed=11)
    assert plan.actions.shape == (3, 50, 14) and plan.samples.shape == (3, 2)
    assert np.all((plan.samples >= 0) & (plan.samples <= 1))
    np.testing.assert_allclose(plan.scores, aggregate(plan.samples, 'majority_mean'))
    assert plan.chosen == select_best(plan.scores)
    assert plan.scores[plan.chosen] == plan.scores.max()
    np.testing.assert_array_equal(plan.chunk, plan.actions[plan.chosen])
    assert not np.allclose(plan.actions[0], plan.actions[1])     # seeds differ per candidate
    if value_mode == 'q_sa':                                     # cheap enough to repeat
        again = BestOfN(tiny_model, config=config).plan(observation(), seed=11)
        np.testing.assert_array_equal(again.samples, plan.samples)


def test_planner_makes_the_reference_number_of_network_calls(tiny_model):
    """The reference's 2-step sampler makes one call (cosmos_sampler.py), so the paper's
    ensembles cost 10 + (1+3+5) + 3 x (1+1+3+4+5) = 61 DiT forwards per planning batch."""
    from cosmos_policy_ros.planning.best_of_n import BestOfN
    dit = tiny_model.dit
    calls = []
    hook = dit.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        config = PlanningConfig(num_candidates=2, action_steps=1, future_steps=(1,),
                                value_steps=(1, 2))
        BestOfN(tiny_model, config=config).plan(observation(), seed=3)
    finally:
        hook.remove()
    assert calls == [2, 2, 2, 2]          # action 1, future 1, values 1 and 2 -> one call each
