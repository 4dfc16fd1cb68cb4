"""The body the policy and planner nodes share: parameters, observation inputs, query timing
and the chunk / value / latency / info publishers.

A subclass loads its model in `setup` (called before any query can run) and implements
`infer(raw)`: build the observation (`observation`), run its model, publish with
`publish_chunk` and the other publishers, and return (chunk stamp [ns], latency [s]).
"""
import json

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Float32, String
from trajectory_msgs.msg import JointTrajectory

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.trigger import QueryTrigger
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.observation import ObservationInputs, QueryLoop
from cosmos_policy_ros.ros.trajectory import to_msg
from cosmos_policy_ros.sim.tasks import TASKS


def load_model(p):
    """CosmosPolicy from the node's model parameters (schemas.policy.MODEL)."""
    import torch

    from cosmos_policy_ros.model.checkpoint import checkpoint_statistics
    from cosmos_policy_ros.model.policy import CosmosPolicy
    if p.torch_threads:
        torch.set_num_threads(p.torch_threads)
    statistics = (p.statistics or checkpoint_statistics(p.checkpoint)
                  or str(share_path('config', 'sim_statistics.json')))
    return CosmosPolicy.from_config(preset=p.preset, checkpoint=p.checkpoint or None,
                                    statistics=statistics, text=p.text, device=p.device,
                                    dtype=p.dtype, runtime=p.runtime,
                                    engine_cache=p.engine_cache or None)


def model_info(p, extra: dict | None = None) -> dict:
    return {'preset': p.preset, 'checkpoint': p.checkpoint, 'untrained': not p.checkpoint,
            'status': 'UNTRAINED (random weights)' if not p.checkpoint else 'trained',
            'device': p.device, 'dtype': p.dtype, 'runtime': p.runtime,
            'num_steps': p.num_steps, **(extra or {})}


class InferenceNode(Node):
    """Publishes chunks on `chunk_topic` and stage latencies on `latency_topic`."""

    def __init__(self, name: str, schema, chunk_topic: str, latency_topic: str):
        super().__init__(name)
        self.params = params.declare(self, schema)
        p = self.params
        self.instruction = p.instruction or TASKS[p.task].instruction
        self.queries = 0
        self.group = ReentrantCallbackGroup()
        self.reliable = QoSProfile(depth=10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.chunk_pub = self.create_publisher(JointTrajectory, chunk_topic, self.reliable)
        self.value_pub = self.create_publisher(Float32, names.VALUE_TOPIC, self.reliable)
        self.latency_pub = self.create_publisher(String, latency_topic, self.reliable)
        self.info_pub = self.create_publisher(String, names.POLICY_INFO_TOPIC, latched)
        self.info = self.setup(p)
        self.publish_info()
        self.inputs = ObservationInputs(self, load_calibration(p.calibration).gripper,
                                        p.freshness, p.sync_slop, callback_group=self.group)
        self.loop = QueryLoop(self, self.inputs,
                              QueryTrigger(mode=p.mode, trigger_steps=p.async_trigger_steps,
                                           finish_first=p.lockstep),
                              self.infer, callback_group=self.group, lockstep=p.lockstep)

    def setup(self, p) -> dict:
        """Load the model and create the node's own publishers; returns the info JSON."""
        raise NotImplementedError

    def infer(self, raw) -> tuple:
        raise NotImplementedError

    def observation(self, raw, observation_type):
        """(model observation, assembled arrays) of the chosen messages."""
        obs = self.inputs.assemble(raw)
        return observation_type(images=obs.images, proprio=obs.proprio,
                                task=self.instruction), obs

    def noise_seed(self, raw, free_running: int) -> int:
        """Lockstep: from the episode seed and chunk index (control.lockstep); else
        `free_running`, the subclass's per-query seed."""
        if self.params.lockstep:
            return lockstep.noise_seed(self.params.seed, raw.stamp_ns * 1e-9,
                                       self.params.execute_steps)
        return free_running

    def publish_chunk(self, actions, stamp_ns: int) -> None:
        self.chunk_pub.publish(to_msg(actions, stamp_ns))

    def publish_info(self) -> None:
        self.info_pub.publish(String(data=json.dumps(self.info)))

    def observation_age(self, stamp_ns: int) -> float:
        """Node-clock age [s] of the observation at `stamp_ns`."""
        return self.get_clock().now().nanoseconds * 1e-9 - stamp_ns * 1e-9

    def close(self) -> None:
        self.loop.close()
