"""`cosmos-policy-ros probe`: a policy's first chunk against the scripted expert over seeds."""
import json

import numpy as np
import pytest

from cosmos_policy_ros.evaluation.probe import compare


def test_compare_gain_is_one_for_a_follower_and_zero_for_a_mean_policy():
    rng = np.random.default_rng(0)
    expert = rng.normal(size=(12, 14))
    follower = {row.joint: row for row in compare(expert + 0.5, expert)}
    mean_policy = {row.joint: row for row in compare(np.tile(expert.mean(0), (12, 1)), expert)}
    half = {row.joint: row for row in compare(0.5 * expert, expert)}
    for joint in ('left_waist', 'right_waist', 'right_gripper'):
        assert follower[joint].corr == pytest.approx(1.0)
        assert follower[joint].gain == pytest.approx(1.0)
        assert follower[joint].mae == pytest.approx(0.5)
        assert mean_policy[joint].gain == pytest.approx(0.0, abs=1e-12)
        assert mean_policy[joint].policy_std == pytest.approx(0.0, abs=1e-12)
        assert half[joint].gain == pytest.approx(0.5) and half[joint].corr == pytest.approx(1.0)


def test_compare_leaves_joints_the_expert_does_not_move_without_a_gain():
    expert = np.zeros((5, 14))
    expert[:, 7] = np.arange(5.0)              # only the right waist follows the object
    rows = {row.joint: row for row in compare(expert + 1e-3 * np.arange(14), expert)}
    assert rows['left_waist'].gain is None and rows['left_waist'].corr is None
    assert rows['right_waist'].gain == pytest.approx(1.0)


def test_compare_refuses_too_few_seeds():
    with pytest.raises(ValueError, match='seeds >= 3'):
        compare(np.zeros((2, 14)), np.zeros((2, 14)))


@pytest.mark.usefixtures('one_torch_thread')
def test_probe_command_compares_the_shipped_policy_with_the_expert(tmp_path, capsys):
    """The command's expert column is the expert's plan for each seed's object poses (checked
    here against sim.expert directly) and the policy column is the first chunk."""
    from cosmos_policy_ros.calibration import load_calibration
    from cosmos_policy_ros.cli import main
    from cosmos_policy_ros.sim import expert
    from cosmos_policy_ros.sim.aloha_sim import sample_object_poses
    assert main(['probe', '--checkpoint', 'sim_transfer_cube', '--episodes', '3', '--seed',
                 '1000', '--step', '45', '--num-steps', '1', '--out', str(tmp_path)]) == 0
    assert 'right_waist' in capsys.readouterr().out
    result = json.loads((tmp_path / 'probe.json').read_text())
    assert result['seeds'] == [1000, 1001, 1002] and result['step'] == 45
    calibration = load_calibration('aloha_sim')
    for seed, row in zip(result['seeds'], result['expert']):
        plan = expert.plan('transfer_cube', sample_object_poses('transfer_cube', seed),
                           calibration)
        # 25 Hz step 45 is 1.8 s: the expert's 50 Hz step 90 (the right arm above the cube).
        assert row[7:13] == pytest.approx(plan.arm['right'][90].tolist())
        assert row[13] == pytest.approx(plan.gripper['right'][90])
    policy = np.array(result['policy'])
    assert policy.shape == (3, 14) and np.all(np.isfinite(policy))
    assert len(result['joints']) == 14
    # The cube moves between seeds, so the expert's right waist does too.
    right_waist = next(j for j in result['joints'] if j['joint'] == 'right_waist')
    assert right_waist['expert_std'] > 0.01


def test_probe_step_outside_the_chunk_is_refused():
    from cosmos_policy_ros.evaluation.probe import probe
    with pytest.raises(ValueError, match='--step must be in 0..49'):
        probe(model=None, task='transfer_cube', seeds=[0, 1, 2], step=50)
