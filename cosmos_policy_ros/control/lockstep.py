"""Lockstep on sim time: a closed loop whose result does not depend on the machine's speed.

With `lockstep:=true` the sim, controller and policy (or planner) follow one protocol, so the
machine's speed does not change the episode: the same seeds give the same episode up to float
rounding, which differs between torch thread counts and devices (ROS-free rules here; the
nodes only apply them):

- The sim advances one control period (40 ms, two physics steps) only when both arms'
  commands stamped with its current time have arrived; otherwise it waits (paused). While
  paused it re-publishes its clock, joint states and cameras, rendering the cameras of the
  current instant if they are not on the camera-rate grid.
- The controller publishes commands only while it executes a chunk. In sync mode a chunk
  starts at the tick of its observation stamp: the sim is paused at that instant, so action
  k is applied over [stamp + 40 ms k, stamp + 40 ms (k+1)), for the chunk's first
  `execute_steps` actions (all 50 by default), then the sim pauses again.
- The policy queries when the controller reports the chunk finished (or idle) and uses only
  observations stamped at or after that report.
- Episode k (the k-th reset) starts at sim time (k + 1) * EPISODE_PERIOD, so any stamp tells
  its episode; its seed is the first seed + k and query q of the episode uses noise seed
  query_seed(episode seed, q), the same seeds as the in-process (--no-ros) loop.
"""
from cosmos_policy_ros.names import CHUNK_LENGTH, CONTROL_HZ

EPISODE_PERIOD = 1000.0        # sim seconds reserved per episode (episodes are shorter)


def episode_of(stamp: float) -> int:
    """Index of the lockstep episode a sim-time stamp [s] belongs to (-1: before the first)."""
    return int(stamp // EPISODE_PERIOD) - 1


def episode_start(index: int) -> float:
    return (index + 1) * EPISODE_PERIOD


def query_index(stamp: float, execute_steps: int = CHUNK_LENGTH) -> int:
    """Which chunk of its episode an observation at `stamp` starts (0, 1, ...), when each
    chunk runs `execute_steps` actions (one every 40 ms)."""
    period = execute_steps / CONTROL_HZ
    return int(round((stamp - episode_start(episode_of(stamp))) / period))


def query_seed(episode_seed: int, query: int) -> int:
    """Noise seed of query `query` of the episode with sim seed `episode_seed`."""
    return int(episode_seed) * 1000 + int(query)


def noise_seed(first_seed: int, stamp: float, execute_steps: int = CHUNK_LENGTH) -> int:
    """Noise seed of the query on the observation at `stamp` when the first episode's sim
    seed is `first_seed` (episode k has seed first_seed + k)."""
    return query_seed(first_seed + episode_of(stamp), query_index(stamp, execute_steps))
