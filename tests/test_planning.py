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
