"""policy: Cosmos Policy on the live cameras and joint states, publishing action chunks.

Subscribes: the three cameras, both follower joint_states (ros.observation), the controller
status (when to query: sync at chunk end, async ahead of it).
Publishes: names.ACTION_CHUNK_TOPIC (trajectory_msgs/JointTrajectory: VECTOR_NAMES, 50 points
40 ms apart, robot units, header stamp = observation time), names.VALUE_TOPIC
(std_msgs/Float32), names.future_image_topic(cam) (sensor_msgs/Image, with decode_future),
names.POLICY_LATENCY_TOPIC (JSON seconds per stage + each source's stamp),
names.POLICY_INFO_TOPIC (latched JSON; says UNTRAINED when no checkpoint is loaded),
names.POLICY_MARKERS_TOPIC (visualization_msgs/MarkerArray for RViz: the chunk preview, both
arms' end-effector paths by FK of the chunk, and the value/latency text).
Inference runs in a worker thread; callbacks never wait for the model.

backend:=remote runs no model here: each query goes to a `cosmos-policy-ros serve` server
(`server`, openpi websocket protocol; token from COSMOS_POLICY_TOKEN) with this node's seed and
steps, and the chunk is published exactly as a local one (stamp = observation time). A down or
slow server publishes nothing (reconnects with backoff), so the controller holds;
/diagnostics reports the connection.
"""
import json
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, String
from visualization_msgs.msg import MarkerArray

from cosmos_policy_ros import names
from cosmos_policy_ros.dashboard.markers import chunk_preview, policy_text
from cosmos_policy_ros.nodes.inference import InferenceNode, load_model, model_info
from cosmos_policy_ros.robot.kinematics import aloha_kinematics
from cosmos_policy_ros.ros import image
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.markers import marker_array
from cosmos_policy_ros.ros.stamps import from_ns
from cosmos_policy_ros.schemas.policy import POLICY


class Policy(InferenceNode):
    def __init__(self):
        super().__init__('policy', POLICY, names.ACTION_CHUNK_TOPIC, names.POLICY_LATENCY_TOPIC)
        p = self.params
        self.get_logger().info(f'policy: preset {p.preset}, {self.info["status"]}, {p.mode} '
                               f'mode, {p.num_steps} steps, task "{self.instruction}"')
        if not p.checkpoint and p.backend == 'local':
            self.get_logger().warning('policy is UNTRAINED (no checkpoint): random weights')

    def setup(self, p) -> dict:
        if p.backend == 'remote':
            from cosmos_policy_ros.serving.client import Observation, RemotePolicy  # no torch
            self.model = RemotePolicy(p.server, timeout=p.server_timeout,
                                      on_connect=self.on_server_connect)
        else:
            from cosmos_policy_ros.model.policy import Observation
            self.model = load_model(p)
        self.observation_type = Observation
        self.marker_pub = self.create_publisher(MarkerArray, names.POLICY_MARKERS_TOPIC,
                                                self.reliable)
        self.kinematics = aloha_kinematics()
        self.future_pubs = {cam: self.create_publisher(Image, names.future_image_topic(cam),
                                                       self.reliable)
                            for cam in names.CAMERAS}
        info = model_info(p, {'task': p.task, 'instruction': self.instruction, 'mode': p.mode})
        if p.backend == 'remote':
            info.update(backend='remote', server=p.server, preset='', checkpoint='',
                        untrained=None, status='remote: not connected yet')
            self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                                  self.reliable)
            self.create_timer(1.0, self.publish_remote_status, callback_group=self.group,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        return info

    def infer(self, raw):
        p = self.params
        started = time.perf_counter()
        observation, obs = self.observation(raw, self.observation_type)
        model_start = time.perf_counter()
        seed = self.noise_seed(raw, p.seed + self.queries)
        out = self.model.predict(observation, num_steps=p.num_steps, seeds=seed,
                                 decode_future=p.decode_future)
        self.queries += 1
        model_s = time.perf_counter() - model_start
        publish_start = time.perf_counter()
        self.publish_chunk(out.actions[0], raw.stamp_ns)
        published, published_mono = time.perf_counter(), time.monotonic()
        value = float(out.value[0])
        self.value_pub.publish(Float32(data=value))
        if p.decode_future and out.future_images:
            for cam, rgb in out.future_images.items():
                if cam in self.future_pubs:
                    frame = rgb[0] if rgb.ndim == 4 else rgb
                    self.future_pubs[cam].publish(image.to_msg(frame, from_ns(raw.stamp_ns),
                                                               f'{cam}_future'))
        node_latency = self.observation_age(raw.stamp_ns)
        latency = {
            'query': self.queries, 'obs_stamp_ns': raw.stamp_ns, 'source_stamps_ns':
            raw.stamps_ns, 'convert_s': obs.convert_s, 'model_s': model_s,
            'publish_s': published - publish_start,
            'camera_to_publish_s': published_mono - raw.newest_receive,
            'inference_total_s': published - started, 'obs_age_at_publish_s': node_latency,
            'value': value, 'untrained': self.info['untrained'], 'noise_seed': seed,
            'model_stages_s': {k: float(v) for k, v in (out.timings or {}).items()}}
        self.latency_pub.publish(String(data=json.dumps(latency)))
        self.marker_pub.publish(marker_array(
            chunk_preview(self.kinematics, out.actions[0])
            + [policy_text(value, model_s, bool(self.info['untrained']))], raw.stamp_ns))
        return raw.stamp_ns, node_latency

    def on_server_connect(self, metadata: dict) -> None:
        """backend:=remote: (re)connected; say what the server runs."""
        server = {k: metadata.get(k) for k in ('preset', 'checkpoint', 'untrained', 'status',
                                               'device', 'dtype') if k in metadata}
        self.info = {**self.info, **server, 'backend': 'remote', 'server_metadata': server}
        self.publish_info()
        self.get_logger().info(f'connected to policy server {self.params.server}: {server}')
        if server.get('untrained'):
            self.get_logger().warning('the policy server runs an UNTRAINED model')

    def publish_remote_status(self) -> None:
        status = self.model.status()
        level = DiagnosticStatus.OK if status['connected'] else DiagnosticStatus.ERROR
        message = (f'connected to {status["server"]}' if status['connected'] else
                   f'policy server unreachable: {status["last_error"] or "not connected yet"}')
        diagnostic = DiagnosticStatus(level=level, name='policy: remote server',
                                      hardware_id=status['server'], message=message)
        diagnostic.values = [KeyValue(key=k, value=str(v)) for k, v in status.items()]
        array = DiagnosticArray(status=[diagnostic])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def close(self) -> None:
        if self.params.backend == 'remote':
            self.model.close()              # interrupts a backoff wait or a pending reply
        super().close()


def main(args=None) -> None:
    run(Policy, args=args)
