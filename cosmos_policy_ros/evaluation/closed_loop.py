"""The closed loop of the deployment graph, in one process (`cosmos-policy-ros eval --no-ros`).

It does what the lockstep graph does (control.lockstep), step for step: reset the sim to the
episode seed; at each chunk boundary render the cameras and read the joint states into an
observation, query the policy (noise seed lockstep.query_seed(seed, chunk)), convert the chunk
to command units and hand it to the controller's chunk executor (control.chunks: its first
`execute_steps` actions, or with `ensemble` the mean over the chunks covering each tick), and
pass each target through the controller's safety gate, one per 40 ms control period (two
20 ms physics steps); stop at success or after the horizon. The ROS graph and this loop
therefore produce the same chunks for the same seeds (tested).
"""
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.chunks import ENSEMBLE_DECAY, ChunkExecutor, check_execute_steps
from cosmos_policy_ros.control.safety import SafetyGate, SafetyLimits
from cosmos_policy_ros.control.units import (
    command_to_robot,
    proprio_from_positions,
    robot_to_command,
)
from cosmos_policy_ros.evaluation.results import EpisodeResult
from cosmos_policy_ros.sim.aloha_sim import DT, AlohaSim
from cosmos_policy_ros.sim.tasks import get_task

TICK_STEPS = round(1.0 / names.CONTROL_HZ / DT)          # physics steps per control period
TICK_SECONDS = 1.0 / names.CONTROL_HZ


@dataclass(frozen=True)
class QueryResult:
    chunk: np.ndarray             # (50, 14) robot units
    value: float
    seconds: float


# observation (model.policy.Observation), noise seed -> QueryResult
Query = Callable[[object, int], QueryResult]


def policy_query(model, num_steps: int) -> Query:
    """Query a CosmosPolicy: one chunk per call."""
    def query(observation, seed: int) -> QueryResult:
        start = time.perf_counter()
        out = model.predict(observation, num_steps=num_steps, seeds=seed)
        return QueryResult(np.asarray(out.actions[0], np.float64), float(out.value[0]),
                           time.perf_counter() - start)
    return query


def planner_query(best_of_n) -> Query:
    """Query best-of-N planning (planning.best_of_n.BestOfN): the chosen chunk."""
    def query(observation, seed: int) -> QueryResult:
        start = time.perf_counter()
        plan = best_of_n.plan(observation, seed=seed)
        return QueryResult(np.asarray(plan.chunk, np.float64), float(plan.scores[plan.chosen]),
                           time.perf_counter() - start)
    return query


class ClosedLoop:
    def __init__(self, task: str, query: Query, calibration: str = 'aloha_sim',
                 horizon_s: float | None = None, max_step_rad: float = 0.1,
                 max_gripper_step: float = 0.25, execute_steps: int = names.CHUNK_LENGTH,
                 ensemble: bool = False, ensemble_decay: float = ENSEMBLE_DECAY,
                 chunk_smoothing: int = 1):
        check_execute_steps(execute_steps)
        self.execute_steps = execute_steps
        self.executor_settings = {'mode': 'sync', 'execute_steps': execute_steps,
                                  'ensemble': ensemble, 'ensemble_decay': ensemble_decay,
                                  'smoothing': chunk_smoothing}
        ChunkExecutor(**self.executor_settings)         # bad settings fail here, not later
        self.task = get_task(task)
        self.query = query
        self.calibration = load_calibration(calibration)
        self.gripper = self.calibration.gripper
        self.sim = AlohaSim(task, self.calibration)
        self.horizon_ticks = round((horizon_s or self.task.episode_seconds) * names.CONTROL_HZ)
        self.limits = SafetyLimits.from_calibration(self.calibration, max_step_rad,
                                                    max_gripper_step)

    def _positions(self) -> dict:
        return {arm: self.sim.arm_state(names.side_of(arm)).position for arm in names.FOLLOWERS}

    def observe(self, cameras=names.CAMERAS):
        from cosmos_policy_ros.model.policy import Observation
        return Observation(images=self.sim.render(cameras),
                           proprio=proprio_from_positions(self._positions(), self.gripper),
                           task=self.task.instruction)

    def run(self, index: int, seed: int, film: tuple = (), rollout: bool = False,
            frame_stride: int = 1) -> EpisodeResult:
        """One episode. film: cameras to keep every tick (video); rollout: keep proprio and
        executed actions at every tick and all cameras every `frame_stride`-th tick and the
        horizon's last (rollout HDF5; rendering three cameras costs ~0.2 s a tick here, so a
        stride of 10 makes rollouts ~5x cheaper and still gives every chunk start and end)."""
        if frame_stride < 1:
            raise ValueError(f'frame_stride must be >= 1, got {frame_stride}')
        started = time.perf_counter()
        self.sim.reset(seed)
        gate = SafetyGate(self.limits)
        executor = ChunkExecutor(**self.executor_settings)
        positions = self._positions()
        gate.reset(np.concatenate([positions[arm][:len(names.COMMAND_JOINTS)]
                                   for arm in names.FOLLOWERS]))
        film = tuple(film)
        result = EpisodeResult(index, seed, False, 0, 0.0, None, 0.0,
                               frames={camera: [] for camera in names.CAMERAS} if rollout
                               else {camera: [] for camera in film})
        frame_steps = [] if rollout else None
        qpos, executed, ticks = [], [], 0
        while ticks < self.horizon_ticks and result.success_time is None:
            observation = self.observe()
            answer = self.query(observation, lockstep.query_seed(seed, len(result.chunks)))
            result.chunks.append(answer.chunk)
            result.values.append(answer.value)
            result.query_seconds.append(answer.seconds)
            start = ticks * TICK_SECONDS
            executor.submit(robot_to_command(answer.chunk, self.gripper), start, start)
            for k in range(self.execute_steps):
                if ticks >= self.horizon_ticks:
                    break
                command = executor.target(ticks * TICK_SECONDS).position
                record = rollout and (ticks % frame_stride == 0
                                      or ticks == self.horizon_ticks - 1)
                keep = names.CAMERAS if record else film
                if k > 0 and keep:
                    observation.images = self.sim.render(keep)
                if record:
                    frame_steps.append(ticks)
                    for camera in names.CAMERAS:
                        result.frames[camera].append(observation.images[camera])
                elif not rollout:
                    for camera in film:
                        result.frames[camera].append(observation.images[camera])
                if rollout and 'cam_high' in film:
                    result.video.append(observation.images['cam_high'])
                qpos.append(proprio_from_positions(self._positions(), self.gripper))
                target = gate.apply(command).target
                executed.append(target)
                for side, part in zip(names.SIDES, names.FOLLOWER_SLICES.values()):
                    self.sim.command(side, names.COMMAND_JOINTS, target[part])
                for _ in range(TICK_STEPS):
                    self.sim.step()
                ticks += 1
                if self.sim.success():
                    result.success_time = ticks / names.CONTROL_HZ
                    break
        if frame_stride > 1:
            result.frame_steps = frame_steps
        result.success = self.sim.success()
        result.max_reward = int(self.sim.max_reward)
        result.sim_seconds = ticks / names.CONTROL_HZ
        result.qpos = np.asarray(qpos)
        result.actions = command_to_robot(np.asarray(executed), self.gripper)
        result.wall_seconds = time.perf_counter() - started
        return result

    def close(self) -> None:
        self.sim.close()
