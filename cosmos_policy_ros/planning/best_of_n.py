"""Best-of-N planning as the reference (ROS-free): candidates, future states, values, choice.

1. The policy model proposes N chunks in one batched call (seed base+i for candidate i).
2. The planning model (the same CosmosPolicy or a second checkpoint) predicts the future
   state of every candidate for each future-ensemble member (steps `future_steps`, seed +j),
3. and values on each (steps `value_steps`, seed +k): V(s') from the predicted future, or
   Q(s, a) from the action alone (no future state).
4. Each candidate's samples are aggregated (planning.aggregate) and the best one wins; ties
   keep the base-seed candidate 0.
Every model call is batched over the N candidates.
"""
import time
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.planning.aggregate import AGGREGATIONS, aggregate, select_best

VALUE_MODES = ('v_sprime', 'q_sa')


@dataclass(frozen=True)
class PlanningConfig:
    num_candidates: int = 8
    action_steps: int = 10
    future_steps: tuple = (1, 3, 5)           # one future-state sample per entry
    value_steps: tuple = (1, 2, 3, 4, 5)      # one value sample per entry (per future state)
    aggregation: str = 'majority_mean'
    value_mode: str = 'v_sprime'
    base_seed: int = 195
    threshold: float = 0.05

    def __post_init__(self):
        if self.num_candidates < 1:
            raise ValueError(f'PlanningConfig.num_candidates must be >= 1, got '
                             f'{self.num_candidates}')
        for name in ('future_steps', 'value_steps'):
            steps = tuple(getattr(self, name))
            if not steps or any(int(s) < 1 for s in steps):
                raise ValueError(f'PlanningConfig.{name} must be a non-empty list of step '
                                 f'counts >= 1, got {steps}')
            object.__setattr__(self, name, tuple(int(s) for s in steps))
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f'PlanningConfig.aggregation: {self.aggregation!r} is not one of '
                             f'{list(AGGREGATIONS)}')
        if self.value_mode not in VALUE_MODES:
            raise ValueError(f'PlanningConfig.value_mode: {self.value_mode!r} is not one of '
                             f'{list(VALUE_MODES)}')

    @property
    def ensemble_size(self) -> int:
        futures = 1 if self.value_mode == 'q_sa' else len(self.future_steps)
        return futures * len(self.value_steps)


@dataclass(frozen=True)
class Plan:
    chosen: int
    actions: np.ndarray          # (N, 50, 14) robot units
    scores: np.ndarray           # (N,) aggregated values
    samples: np.ndarray          # (N, E) every value sample
    policy_values: np.ndarray    # (N,) the policy model's own value head
    timings: dict                # stage -> seconds

    @property
    def chunk(self) -> np.ndarray:
        return self.actions[self.chosen]


class BestOfN:
    def __init__(self, policy, planning_model=None, config: PlanningConfig = PlanningConfig()):
        self.policy = policy
        self.planning_model = planning_model if planning_model is not None else policy
        self.config = config

    def plan(self, observation, seed: int | None = None) -> Plan:
        cfg = self.config
        base = cfg.base_seed if seed is None else seed
        seeds = [base + i for i in range(cfg.num_candidates)]
        timings = {}
        start = time.perf_counter()
        # One batched call: the observation is encoded once, candidate i uses seed base+i.
        proposal = self.policy.predict(observation, num_steps=cfg.action_steps, seeds=seeds)
        actions = np.asarray(proposal.actions, dtype=np.float64)
        timings['candidates_s'] = time.perf_counter() - start
        samples = []
        future_s = value_s = 0.0
        # Q(s, a) masks the future frames, so the proposal's own latents serve as its input.
        futures = [None] if cfg.value_mode == 'q_sa' else cfg.future_steps
        for j, future_steps in enumerate(futures):
            future = proposal
            if future_steps is not None:
                tick = time.perf_counter()
                # As the reference: the raw generated action latent conditions the world model.
                future = self.planning_model.predict_future(
                    observation, action_latent=proposal.action_latent, num_steps=future_steps,
                    seeds=[s + j for s in seeds])
                future_s += time.perf_counter() - tick
            for k, value_steps in enumerate(cfg.value_steps):
                tick = time.perf_counter()
                values = self.planning_model.predict_value(
                    observation, future, num_steps=value_steps,
                    seeds=[s + k for s in seeds], mode=cfg.value_mode)
                value_s += time.perf_counter() - tick
                samples.append(np.asarray(values, dtype=np.float64).reshape(-1))
        timings.update(future_s=future_s, value_s=value_s)
        samples_NE = np.stack(samples, axis=1)
        scores = aggregate(samples_NE, cfg.aggregation, cfg.threshold)
        chosen = select_best(scores, base_index=0)
        timings['total_s'] = time.perf_counter() - start
        return Plan(chosen, actions, scores, samples_NE,
                    np.asarray(proposal.value, dtype=np.float64).reshape(-1), timings)
