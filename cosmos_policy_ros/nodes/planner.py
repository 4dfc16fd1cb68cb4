"""planner: best-of-N planning (planning.best_of_n) on the live observation.

Same inputs and query timing as the policy node (ros.observation). Publishes the chosen chunk
on names.PLANNED_CHUNK_TOPIC (the controller follows it when planning is on), every
candidate's aggregated value on names.PLANNER_VALUES_TOPIC (std_msgs/Float32MultiArray, the
layout's label carries the chosen index), the chosen value on names.VALUE_TOPIC and the stage
latencies on names.PLANNER_LATENCY_TOPIC. The planning model is a second checkpoint when
`planning_checkpoint` is set, else the policy model itself.
"""
import json
import time

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Float32, Float32MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.trigger import QueryTrigger
from cosmos_policy_ros.nodes.policy import PARAMS as POLICY_PARAMS
from cosmos_policy_ros.nodes.policy import load_model, model_info
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.planning.aggregate import AGGREGATIONS
from cosmos_policy_ros.planning.best_of_n import VALUE_MODES, BestOfN, PlanningConfig
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.observation import ObservationInputs, QueryLoop
from cosmos_policy_ros.ros.trajectory import to_msg
from cosmos_policy_ros.sim.tasks import TASKS

PARAMS = tuple(p for p in POLICY_PARAMS if p.name != 'decode_future') + (
    Param('planning_checkpoint', '', "planning model weights ('' = use the policy model)",
          read_only=True),
    Param('num_candidates', 8, 'candidate chunks per query (one batched call)', min=1,
          max=64),
    Param('future_steps', [1, 3, 5], 'future-state ensemble: denoising steps per sample'),
    Param('value_steps', [1, 2, 3, 4, 5], 'value ensemble: denoising steps per sample'),
    Param('aggregation', 'majority_mean', 'value ensemble aggregation', choices=AGGREGATIONS),
    Param('value_mode', 'v_sprime', "V(s') from predicted futures or Q(s,a)",
          choices=VALUE_MODES),
)


class Planner(Node):
    def __init__(self):
        super().__init__('planner')
        self.params = params.declare(self, PARAMS)
        p = self.params
        self.instruction = p.instruction or TASKS[p.task].instruction
        policy = load_model(p)
        planning_model = None
        if p.planning_checkpoint:
            from types import SimpleNamespace
            planning_model = load_model(SimpleNamespace(**{**vars(p),
                                                         'checkpoint': p.planning_checkpoint}))
        self.config = PlanningConfig(
            num_candidates=p.num_candidates, action_steps=p.num_steps,
            future_steps=tuple(p.future_steps), value_steps=tuple(p.value_steps),
            aggregation=p.aggregation, value_mode=p.value_mode, base_seed=p.seed)
        self.best_of_n = BestOfN(policy, planning_model, self.config)
        self.queries = 0
        group = ReentrantCallbackGroup()
        reliable = QoSProfile(depth=10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.chunk_pub = self.create_publisher(JointTrajectory, names.PLANNED_CHUNK_TOPIC,
                                               reliable)
        self.values_pub = self.create_publisher(Float32MultiArray, names.PLANNER_VALUES_TOPIC,
                                                reliable)
        self.value_pub = self.create_publisher(Float32, names.VALUE_TOPIC, reliable)
        self.latency_pub = self.create_publisher(String, names.PLANNER_LATENCY_TOPIC, reliable)
        self.info_pub = self.create_publisher(String, names.POLICY_INFO_TOPIC, latched)
        self.inputs = ObservationInputs(self, load_calibration(p.calibration).gripper,
                                        p.freshness, p.sync_slop, callback_group=group)
        self.loop = QueryLoop(self, self.inputs,
                              QueryTrigger(mode=p.mode, trigger_steps=p.async_trigger_steps,
                                           finish_first=p.lockstep),
                              self.infer, callback_group=group, lockstep=p.lockstep)
        info = model_info(p, {'task': p.task, 'instruction': self.instruction, 'mode': p.mode,
                              'planning': True, 'planning_checkpoint': p.planning_checkpoint,
                              'num_candidates': p.num_candidates,
                              'aggregation': p.aggregation, 'value_mode': p.value_mode})
        self.info_pub.publish(String(data=json.dumps(info)))
        self.get_logger().info(f'planner: best-of-{p.num_candidates}, {p.aggregation}, '
                               f'{p.value_mode}, {info["status"]}')

    def infer(self, raw):
        from cosmos_policy_ros.model.policy import Observation
        started = time.perf_counter()
        obs = self.inputs.assemble(raw)
        observation = Observation(images=obs.images, proprio=obs.proprio,
                                  task=self.instruction)
        seed = (lockstep.noise_seed(self.params.seed, raw.stamp_ns * 1e-9)
                if self.params.lockstep else self.config.base_seed + 1000 * self.queries)
        plan = self.best_of_n.plan(observation, seed=seed)
        self.queries += 1
        publish_start = time.perf_counter()
        self.chunk_pub.publish(to_msg(plan.chunk, raw.stamp_ns))
        published = time.perf_counter()
        values = Float32MultiArray(data=[float(v) for v in plan.scores])
        values.layout.dim = [MultiArrayDimension(label=f'candidates chosen={plan.chosen}',
                                                 size=len(plan.scores), stride=1)]
        self.values_pub.publish(values)
        self.value_pub.publish(Float32(data=float(plan.scores[plan.chosen])))
        node_latency = self.get_clock().now().nanoseconds * 1e-9 - raw.stamp_ns * 1e-9
        self.latency_pub.publish(String(data=json.dumps({
            'query': self.queries, 'obs_stamp_ns': raw.stamp_ns, 'chosen': plan.chosen,
            'scores': plan.scores.tolist(), 'convert_s': obs.convert_s,
            'model_s': plan.timings['total_s'], 'publish_s': published - publish_start,
            'inference_total_s': published - started, 'obs_age_at_publish_s': node_latency,
            'model_stages_s': plan.timings, 'untrained': not self.params.checkpoint})))
        return raw.stamp_ns, node_latency

    def close(self) -> None:
        self.loop.close()


def main(args=None) -> None:
    run(Planner, args=args)
