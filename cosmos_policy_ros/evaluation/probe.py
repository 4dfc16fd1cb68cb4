"""Does a policy follow the object? Its first chunk against the scripted expert, over seeds.

At an episode's first observation the arms always start in the same pose, so only the cameras
tell where the object is. For each seed the probe predicts the first chunk (noise seed
lockstep.query_seed(seed, 0), as the closed loop) and plans the scripted expert for the same
object poses (sim.expert, the demonstrator), then compares both at one 25 Hz step of the chunk,
joint by joint, across seeds:

- `corr`: Pearson correlation of policy and expert targets across seeds;
- `gain`: the least-squares slope of policy on expert, 1 when the policy moves a joint with the
  object as the expert does, 0 when it ignores the object (a policy that outputs the demos'
  mean trajectory has gain 0 and success near 0);
- `expert_std`, `policy_std` [rad or gripper 0..1] and `mae`.

A closed-loop success rate says that a policy fails; this says whether it sees the object.
"""
from dataclasses import asdict, dataclass

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.control import lockstep

MIN_EXPERT_STD = 1e-6           # [rad]: below this the expert's joint ignores the object
MIN_SEEDS = 3                   # fewer seeds give no meaningful correlation


@dataclass(frozen=True)
class JointProbe:
    joint: str
    corr: float | None           # None: the expert's target does not vary with the seed
    gain: float | None
    expert_std: float
    policy_std: float
    mae: float


def expert_targets(task: str, seed: int, calibration, step: int) -> np.ndarray:
    """(14,) the scripted expert's targets at 25 Hz step `step` of the episode with `seed`
    (robot units: arm joints [rad], gripper opening 0 closed .. 1 open)."""
    from cosmos_policy_ros.sim import expert
    from cosmos_policy_ros.sim.aloha_sim import sample_object_poses
    trajectory = expert.plan(task, sample_object_poses(task, seed), calibration)
    index = trajectory.step_at(step / names.CONTROL_HZ)
    return np.concatenate([np.append(trajectory.arm[side][index], trajectory.gripper[side][index])
                           for side in names.SIDES])


def compare(policy: np.ndarray, expert: np.ndarray) -> list[JointProbe]:
    """Per-joint statistics of policy vs expert targets, both (seeds, 14)."""
    policy, expert = np.asarray(policy, np.float64), np.asarray(expert, np.float64)
    if policy.shape != expert.shape or policy.ndim != 2 or policy.shape[0] < MIN_SEEDS:
        raise ValueError(f'compare: need matching (seeds >= {MIN_SEEDS}, 14) arrays, got '
                         f'{policy.shape} and {expert.shape}')
    rows = []
    for j, label in enumerate(names.VECTOR_NAMES):
        p, e = policy[:, j] - policy[:, j].mean(), expert[:, j] - expert[:, j].mean()
        covariance, expert_power = float((p * e).sum()), float((e ** 2).sum())
        spread = float(np.sqrt((p ** 2).sum() * expert_power))
        expert_std = float(e.std())
        # A joint the expert moves the same way for every seed says nothing about the object.
        varies = expert_std > MIN_EXPERT_STD
        rows.append(JointProbe(label,
                               corr=covariance / spread if varies and spread > 0 else None,
                               gain=covariance / expert_power if varies else None,
                               expert_std=expert_std, policy_std=float(p.std()),
                               mae=float(np.abs(policy[:, j] - expert[:, j]).mean())))
    return rows


def probe(model, task: str, seeds, step: int = 40, num_steps: int = 10,
          calibration: str = 'aloha_sim') -> dict:
    """Policy vs expert at chunk step `step` of the first chunk over `seeds`."""
    from cosmos_policy_ros.evaluation.closed_loop import ClosedLoop
    if not 0 <= step < names.CHUNK_LENGTH:
        raise ValueError(f'--step must be in 0..{names.CHUNK_LENGTH - 1} (a step of the first '
                         f'{names.CHUNK_LENGTH}-action chunk), got {step}')
    seeds = [int(s) for s in seeds]
    loop = ClosedLoop(task, query=None, calibration=calibration)
    policy, expert = [], []
    try:
        for seed in seeds:
            loop.sim.reset(seed)
            out = model.predict(loop.observe(), num_steps=num_steps,
                                seeds=lockstep.query_seed(seed, 0))
            policy.append(np.asarray(out.actions[0][step], np.float64))
            expert.append(expert_targets(task, seed, loop.calibration, step))
    finally:
        loop.close()
    policy, expert = np.array(policy), np.array(expert)
    return {'task': task, 'seeds': seeds, 'step': step, 'num_steps': num_steps,
            'joints': [asdict(row) for row in compare(policy, expert)],
            'policy': policy.tolist(), 'expert': expert.tolist()}


def table(result: dict) -> str:
    lines = [f'{"joint":<22} {"corr":>6} {"gain":>6} {"expert sd":>9} {"policy sd":>9} '
             f'{"mae":>6}']
    def number(value) -> str:
        return '     -' if value is None else f'{value:6.2f}'
    for row in result['joints']:
        lines.append(f'{row["joint"]:<22} {number(row["corr"])} {number(row["gain"])} '
                     f'{row["expert_std"]:9.3f} {row["policy_std"]:9.3f} {row["mae"]:6.3f}')
    return '\n'.join(lines)
