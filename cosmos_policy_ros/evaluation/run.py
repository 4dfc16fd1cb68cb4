"""`cosmos-policy-ros eval`: settings, the in-process path, and the outputs both paths write.

Outputs in <out>/: summary.json (per-episode results, success rate with its 95 % Wilson
interval, seeds, settings), success.png, episode_<i>.mp4 (cam_high) for the first `videos`
episodes, and with `rollouts` one rollout HDF5 per episode (the planning model's data).
"""
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cosmos_policy_ros.control.chunks import ENSEMBLE_DECAY
from cosmos_policy_ros.evaluation import results as R
from cosmos_policy_ros.evaluation.results import EpisodeResult
from cosmos_policy_ros.names import CHUNK_LENGTH


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str
    task: str = 'transfer_cube'
    episodes: int = 10
    seed: int = 1000                   # first episode seed (episode i uses seed + i)
    num_steps: int = 10
    execute_steps: int = CHUNK_LENGTH  # actions executed of each chunk (schemas.controller)
    ensemble: bool = False             # temporal ensembling (schemas.controller)
    ensemble_decay: float = ENSEMBLE_DECAY
    chunk_smoothing: int = 1           # moving-average window over each chunk (schemas.controller)
    horizon_s: float = 0.0             # 0 = the task's episode length
    videos: int = 3                    # film cam_high for this many first episodes
    rollouts: str = ''                 # directory for rollout HDF5 files ('' = none)
    rollout_frame_stride: int = 1      # rollouts: render the cameras every k-th tick only
    out: str = 'runs/eval'
    device: str = 'cpu'
    runtime: str = 'eager'             # runtime.RUNTIMES (docs/inference.md)
    threads: int = 0
    camera_rate: float = 5.0           # ROS: sim camera rate for unfilmed episodes [Hz]
    planning: bool = False
    planning_checkpoint: str = ''
    num_candidates: int = 4
    future_steps: tuple = (1, 3, 5)
    value_steps: tuple = (1, 2, 3, 4, 5)
    aggregation: str = 'majority_mean'
    wall_timeout: float = 1800.0       # ROS: wall seconds allowed per episode
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f'--episodes must be >= 1, got {self.episodes}')
        if self.seed < 0:
            raise ValueError(f'--seed must be >= 0, got {self.seed}')
        if self.num_steps < 1:
            raise ValueError(f'--num-steps must be >= 1, got {self.num_steps}')
        from cosmos_policy_ros.schemas.controller import EXECUTE_STEPS
        if not EXECUTE_STEPS.min <= self.execute_steps <= EXECUTE_STEPS.max:
            raise ValueError(f'--execute-steps must be in {EXECUTE_STEPS.min}..'
                             f'{EXECUTE_STEPS.max} (actions of a chunk), got '
                             f'{self.execute_steps}')
        from cosmos_policy_ros.schemas.controller import ENSEMBLE_DECAY
        if not ENSEMBLE_DECAY.min <= self.ensemble_decay <= ENSEMBLE_DECAY.max:
            raise ValueError(f'--ensemble-decay must be in {ENSEMBLE_DECAY.min:g}..'
                             f'{ENSEMBLE_DECAY.max:g}, got {self.ensemble_decay}')
        from cosmos_policy_ros.control.chunks import check_smoothing
        check_smoothing(self.chunk_smoothing, '--chunk-smoothing')
        self._check_camera_rate()
        if self.rollout_frame_stride < 1:
            raise ValueError(f'--rollout-frame-stride must be >= 1, got '
                             f'{self.rollout_frame_stride}')

    def _check_camera_rate(self) -> None:
        # The graph's controller holds when a camera frame is older than its
        # observation_timeout; slower cameras would stop every chunk early (and the next
        # query would see another instant than the in-process loop), so refuse them.
        from cosmos_policy_ros.params import pick
        from cosmos_policy_ros.schemas.controller import CONTROLLER
        timeout = pick(CONTROLLER, 'observation_timeout')[0].default
        if self.camera_rate <= 0 or 1.0 / self.camera_rate >= timeout:
            raise ValueError(f'--camera-rate {self.camera_rate:g} Hz leaves camera frames up to '
                             f'{1.0 / max(self.camera_rate, 1e-9):g} s old, but the controller '
                             f'holds the arms when a camera is older than its '
                             f'observation_timeout ({timeout:g} s): use --camera-rate above '
                             f'{1.0 / timeout:g} Hz (default 5)')

    def horizon(self) -> float:
        from cosmos_policy_ros.sim.tasks import get_task
        return self.horizon_s or get_task(self.task).episode_seconds

    def film(self, index: int) -> bool:
        return index < self.videos


def load_models(cfg: EvalConfig):
    """(policy query, description) for the in-process path."""
    import torch

    from cosmos_policy_ros.evaluation.closed_loop import planner_query, policy_query
    from cosmos_policy_ros.model.policy import CosmosPolicy
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    policy = CosmosPolicy.from_config(checkpoint=cfg.checkpoint, device=cfg.device,
                                      runtime=cfg.runtime)
    if not cfg.planning:
        return policy_query(policy, cfg.num_steps)
    from cosmos_policy_ros.planning.best_of_n import BestOfN, PlanningConfig
    planning_model = (CosmosPolicy.from_config(checkpoint=cfg.planning_checkpoint,
                                               device=cfg.device, runtime=cfg.runtime)
                      if cfg.planning_checkpoint else None)
    config = PlanningConfig(num_candidates=cfg.num_candidates, action_steps=cfg.num_steps,
                            future_steps=cfg.future_steps, value_steps=cfg.value_steps,
                            aggregation=cfg.aggregation)
    return planner_query(BestOfN(policy, planning_model, config))


def run_in_process(cfg: EvalConfig, on_episode) -> list[EpisodeResult]:
    from cosmos_policy_ros.evaluation.closed_loop import ClosedLoop
    loop = ClosedLoop(cfg.task, load_models(cfg), horizon_s=cfg.horizon(),
                      execute_steps=cfg.execute_steps, ensemble=cfg.ensemble,
                      ensemble_decay=cfg.ensemble_decay, chunk_smoothing=cfg.chunk_smoothing)
    results = []
    try:
        for i in range(cfg.episodes):
            result = loop.run(i, cfg.seed + i, film=('cam_high',) if cfg.film(i) else (),
                              rollout=bool(cfg.rollouts), frame_stride=cfg.rollout_frame_stride)
            on_episode(result)
            results.append(result)
    finally:
        loop.close()
    return results


class Outputs:
    """Writes each episode's video / rollout as it finishes, and the summary at the end."""

    def __init__(self, cfg: EvalConfig, path: str):
        self.cfg, self.path = cfg, path
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results: list[EpisodeResult] = []

    def episode(self, result: EpisodeResult) -> None:
        print(R.line(result), flush=True)
        frames = result.video or result.frames.get('cam_high') or []
        if self.cfg.film(result.index) and frames:
            R.write_video(frames, self.out / f'episode_{result.index:03d}.mp4')
        if self.cfg.rollouts:
            from cosmos_policy_ros.evaluation.rollouts import write_rollout
            from cosmos_policy_ros.sim.tasks import get_task
            # success_score stays the 0/1 label: the reference's value targets treat any
            # score > 0 like a success, so partial credit would teach failures as successes.
            # The reward stage reached is kept beside it for analysis.
            write_rollout(Path(self.cfg.rollouts) / f'rollout_seed{result.seed}.hdf5',
                          result.qpos, result.actions, result.frames, result.success,
                          get_task(self.cfg.task).instruction,
                          policy_name=f'cosmos-policy-ros:{self.cfg.checkpoint}',
                          seed=result.seed, frame_steps=result.frame_steps,
                          attrs={'max_reward': int(result.max_reward)})
        result.frames, result.video = {}, []       # written; free the memory
        self.results.append(result)

    def finish(self) -> dict:
        meta = {'task': self.cfg.task, 'path': self.path, 'checkpoint': self.cfg.checkpoint,
                'settings': {k: v for k, v in asdict(self.cfg).items() if k != 'extra'},
                **self.cfg.extra}
        summary = R.summarize(self.results, meta)
        R.write_json(summary, self.out / 'summary.json')
        R.plot(summary, self.out / 'success.png')
        low, high = summary['success_rate_ci95']
        print(f'{self.cfg.task} ({self.path}): success {summary["successes"]}/'
              f'{summary["episodes"]} = {summary["success_rate"]:.1%} (95 % CI {low:.1%}-'
              f'{high:.1%}), seeds {self.cfg.seed}..{self.cfg.seed + self.cfg.episodes - 1}; '
              f'results in {self.out}', flush=True)
        return summary
