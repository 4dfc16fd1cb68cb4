"""`eval`: the lockstep ROS graph and the in-process loop give the same episode; results,
videos and rollout files are real and readable."""
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from episode_files import train_config, write_dataset

from cosmos_policy_ros.evaluation.results import wilson_interval
from cosmos_policy_ros.evaluation.run import EvalConfig, Outputs, run_in_process
from cosmos_policy_ros.training.config import config_from_dict
from cosmos_policy_ros.training.episodes import read_episode
from cosmos_policy_ros.training.trainer import train

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A tiny policy trained for 2 steps by `train` (its own statistics and VAE)."""
    root = tmp_path_factory.mktemp('policy')
    data = write_dataset(root / 'episodes', episodes=2)
    config = config_from_dict(train_config(root, data, **{'optim.steps': 2}))
    return str(train(config, progress=False).best)


def test_wilson_interval():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(47, 50) == pytest.approx((0.8378, 0.9794), abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize('execute_steps, queries, ensemble, smoothing',
                         [(50, 2, False, 1), (20, 3, False, 1), (20, 3, True, 5)])
def test_ros_graph_and_in_process_loop_agree(checkpoint, tmp_path, log_dir, execute_steps,
                                             queries, ensemble, smoothing):
    """Same seed: identical chunks, values, joint states and executed commands; whole chunks
    (queries at 0 and 2 s), 20 actions of each (queries at 0, 0.8 and 1.6 s), and 20 with
    temporal ensembling (from 0.8 s on two chunks vote on each action) of smoothed chunks."""
    from cosmos_policy_ros.ros.evaluation import run_ros
    config = EvalConfig(checkpoint=checkpoint, episodes=1, seed=1003, num_steps=2,
                        execute_steps=execute_steps, ensemble=ensemble, ensemble_decay=0.5,
                        chunk_smoothing=smoothing, horizon_s=2.2, videos=0,
                        out=str(tmp_path / 'out'), threads=1, wall_timeout=400)
    local = run_in_process(config, lambda r: None)[0]
    if ensemble:      # the ensemble is what ran: the same as the newest chunk until 0.8 s only
        newest_only = run_in_process(replace(config, ensemble=False), lambda r: None)[0]
        np.testing.assert_array_equal(local.actions[:20], newest_only.actions[:20])
        assert np.abs(local.actions[20:] - newest_only.actions[20:]).max() > 1e-3
    if smoothing > 1:   # the chunks are the policy's; the commands are their moving average
        raw = run_in_process(replace(config, chunk_smoothing=1), lambda r: None)[0]
        np.testing.assert_array_equal(np.float32(raw.chunks[0]), np.float32(local.chunks[0]))
        assert np.abs(local.actions[:20] - raw.actions[:20]).max() > 1e-3
    graph = run_ros(config, lambda r: None, log_dir)[0]
    assert len(local.chunks) == len(graph.chunks) == queries
    for a, b in zip(local.chunks, graph.chunks):
        np.testing.assert_array_equal(np.float32(a), np.float32(b))
    assert local.values == pytest.approx(graph.values, abs=1e-6)
    assert local.qpos.shape == graph.qpos.shape == (55, 14)
    np.testing.assert_allclose(graph.qpos, local.qpos, atol=1e-12)
    np.testing.assert_allclose(graph.actions, local.actions, atol=1e-12)
    assert (graph.success, graph.max_reward, graph.sim_seconds) == \
        (local.success, local.max_reward, local.sim_seconds)


def test_outputs_video_summary_and_rollout_files(checkpoint, tmp_path):
    config = EvalConfig(checkpoint=checkpoint, episodes=1, seed=1001, num_steps=1,
                        horizon_s=0.4, videos=1, out=str(tmp_path / 'out'),
                        rollouts=str(tmp_path / 'rollouts'), threads=1)
    outputs = Outputs(config, 'in-process')
    run_in_process(config, outputs.episode)
    summary = outputs.finish()
    saved = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert saved['episodes'] == summary['episodes'] == 1 and saved['seeds'] == [1001]
    assert saved['success_rate_ci95'] == pytest.approx(list(wilson_interval(
        saved['successes'], 1)))
    assert (tmp_path / 'out' / 'success.png').stat().st_size > 1000
    video = cv2.VideoCapture(str(tmp_path / 'out' / 'episode_000.mp4'))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = video.read()
    assert ok and first.shape == (480, 640, 3) and frames == 10         # 0.4 s at 25 Hz
    rollout = read_episode(Path(config.rollouts) / 'rollout_seed1001.hdf5')
    assert rollout.kind == 'rollout' and rollout.length == 10
    assert rollout.success == saved['per_episode'][0]['success']
    assert rollout.instruction == 'transfer the red cube to the other arm'
    assert rollout.images('cam_high', [0, 9]).shape == (2, 480, 640, 3)


def test_sparse_rollout_renders_every_kth_tick_and_reads_back(checkpoint, tmp_path):
    """--rollout-frame-stride: frames at every k-th tick and the horizon's last, the video
    still at every tick, joints and actions at every tick; only steps whose frame and future
    frame exist are samples."""
    import h5py
    config = EvalConfig(checkpoint=checkpoint, episodes=1, seed=1002, num_steps=1,
                        horizon_s=2.4, videos=1, out=str(tmp_path / 'out'),
                        rollouts=str(tmp_path / 'rollouts'), rollout_frame_stride=10,
                        threads=1)
    outputs = Outputs(config, 'in-process')
    [result] = run_in_process(config, outputs.episode)
    outputs.finish()
    path = Path(config.rollouts) / 'rollout_seed1002.hdf5'
    with h5py.File(path, 'r') as f:                     # the file as written, read directly
        assert f['frame_steps'][()].tolist() == [0, 10, 20, 30, 40, 50, 59]
        lengths = [len(row) for row in f['primary_images_jpeg'][()]]
        assert f['action'].shape == (60, 14) and len(lengths) == 60
        assert [i for i, n in enumerate(lengths) if n] == [0, 10, 20, 30, 40, 50, 59]
        assert f.attrs['max_reward'] == result.max_reward
        assert f.attrs['success_score'] == float(result.success)
    video = cv2.VideoCapture(str(tmp_path / 'out' / 'episode_000.mp4'))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    rollout = read_episode(path)
    assert rollout.frame_steps.tolist() == [0, 10, 20, 30, 40, 50, 59]
    # Futures are min(t + 50, 59): every rendered step's future (50 or 59) is rendered too.
    assert rollout.sample_steps.tolist() == [0, 10, 20, 30, 40, 50, 59]
    assert rollout.images('cam_left_wrist', [10, 59]).shape == (2, 480, 640, 3)
    with pytest.raises(ValueError, match=r'has no frame .*frame_steps'):
        rollout.images('cam_high', [5])


def test_rollout_frame_stride_needs_the_in_process_loop(capsys):
    from cosmos_policy_ros.cli import main
    assert main(['eval', '--checkpoint', 'sim_aloha', '--rollouts', '/nonexistent',
                 '--rollout-frame-stride', '10']) == 2
    assert '--rollout-frame-stride > 1 needs --no-ros' in capsys.readouterr().out


def test_camera_rate_must_keep_frames_fresher_than_the_controller_timeout():
    """At 0.5 Hz the controller's camera watchdog (1 s) held every chunk after ~1.04 s and the
    graph's episode was not the in-process one; such rates are refused, naming the fix."""
    with pytest.raises(ValueError, match=r'--camera-rate 0.5 Hz leaves camera frames up to 2 s '
                                         r"old.*observation_timeout \(1 s\).*above 1 Hz"):
        EvalConfig(checkpoint='sim_aloha', camera_rate=0.5)
    with pytest.raises(ValueError, match='--camera-rate 1 Hz'):
        EvalConfig(checkpoint='sim_aloha', camera_rate=1.0)
    assert EvalConfig(checkpoint='sim_aloha', camera_rate=1.5).camera_rate == 1.5


def test_ensemble_decay_out_of_range_is_refused_naming_the_flag(capsys):
    from cosmos_policy_ros.cli import main
    assert main(['eval', '--checkpoint', 'sim_aloha', '--ensemble', '--ensemble-decay',
                 '-1']) == 2
    assert '--ensemble-decay must be in 0..10, got -1.0' in capsys.readouterr().out


def test_even_chunk_smoothing_is_refused_naming_the_flag(capsys):
    from cosmos_policy_ros.cli import main
    assert main(['eval', '--checkpoint', 'sim_aloha', '--chunk-smoothing', '4']) == 2
    assert ('--chunk-smoothing must be an odd number of actions in 1..50 (1: off; a centred '
            'window needs an odd length), got 4') in capsys.readouterr().out


def test_execute_steps_outside_a_chunk_is_refused_naming_the_flag(capsys):
    from cosmos_policy_ros.cli import main
    assert main(['eval', '--checkpoint', 'sim_aloha', '--execute-steps', '0']) == 2
    assert '--execute-steps must be in 1..50 (actions of a chunk), got 0' in \
        capsys.readouterr().out
