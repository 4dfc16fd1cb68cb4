"""planner: best-of-N planning (planning.best_of_n) on the live observation.

Same body as the policy node (nodes.inference: parameters, inputs, query timing). Publishes
the chosen chunk on names.PLANNED_CHUNK_TOPIC (the controller follows it when planning is
on), every candidate's aggregated value on names.PLANNER_VALUES_TOPIC
(std_msgs/Float32MultiArray, the layout's label carries the chosen index), the chosen value on
names.VALUE_TOPIC, the stage latencies on names.PLANNER_LATENCY_TOPIC, and for RViz on
names.PLANNER_MARKERS_TOPIC every candidate's end-effector paths coloured by value (the chosen
one thicker, values as labels) with the chosen chunk's preview. The planning model
is a second checkpoint when `planning_checkpoint` is set, else the policy model itself.
"""
import json
import time

from std_msgs.msg import Float32, Float32MultiArray, MultiArrayDimension, String
from visualization_msgs.msg import MarkerArray

from cosmos_policy_ros import names
from cosmos_policy_ros.dashboard.markers import chunk_preview, planner_candidates
from cosmos_policy_ros.nodes.inference import InferenceNode, load_model, model_info
from cosmos_policy_ros.planning.best_of_n import BestOfN, PlanningConfig
from cosmos_policy_ros.robot.kinematics import aloha_kinematics
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.markers import marker_array
from cosmos_policy_ros.schemas.policy import PLANNER


class Planner(InferenceNode):
    def __init__(self):
        super().__init__('planner', PLANNER, names.PLANNED_CHUNK_TOPIC,
                         names.PLANNER_LATENCY_TOPIC)
        p = self.params
        self.get_logger().info(f'planner: best-of-{p.num_candidates}, {p.aggregation}, '
                               f'{p.value_mode}, {self.info["status"]}')

    def setup(self, p) -> dict:
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
        self.values_pub = self.create_publisher(Float32MultiArray, names.PLANNER_VALUES_TOPIC,
                                                self.reliable)
        self.marker_pub = self.create_publisher(MarkerArray, names.PLANNER_MARKERS_TOPIC,
                                                self.reliable)
        self.kinematics = aloha_kinematics()
        return model_info(p, {'task': p.task, 'instruction': self.instruction, 'mode': p.mode,
                              'planning': True, 'planning_checkpoint': p.planning_checkpoint,
                              'num_candidates': p.num_candidates,
                              'aggregation': p.aggregation, 'value_mode': p.value_mode})

    def infer(self, raw):
        from cosmos_policy_ros.model.policy import Observation
        started = time.perf_counter()
        observation, obs = self.observation(raw, Observation)
        seed = self.noise_seed(raw, self.config.base_seed + 1000 * self.queries)
        plan = self.best_of_n.plan(observation, seed=seed)
        self.queries += 1
        publish_start = time.perf_counter()
        self.publish_chunk(plan.chunk, raw.stamp_ns)
        published = time.perf_counter()
        values = Float32MultiArray(data=[float(v) for v in plan.scores])
        values.layout.dim = [MultiArrayDimension(label=f'candidates chosen={plan.chosen}',
                                                 size=len(plan.scores), stride=1)]
        self.values_pub.publish(values)
        self.value_pub.publish(Float32(data=float(plan.scores[plan.chosen])))
        self.marker_pub.publish(marker_array(
            planner_candidates(self.kinematics, plan.actions, plan.scores, plan.chosen)
            + chunk_preview(self.kinematics, plan.chunk, ns='planner'), raw.stamp_ns))
        node_latency = self.observation_age(raw.stamp_ns)
        self.latency_pub.publish(String(data=json.dumps({
            'query': self.queries, 'obs_stamp_ns': raw.stamp_ns, 'chosen': plan.chosen,
            'scores': plan.scores.tolist(), 'convert_s': obs.convert_s,
            'model_s': plan.timings['total_s'], 'publish_s': published - publish_start,
            'inference_total_s': published - started, 'obs_age_at_publish_s': node_latency,
            'model_stages_s': plan.timings, 'untrained': not self.params.checkpoint})))
        return raw.stamp_ns, node_latency


def main(args=None) -> None:
    run(Planner, args=args)
