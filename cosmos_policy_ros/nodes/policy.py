"""policy: Cosmos Policy on the live cameras and joint states, publishing action chunks.

Subscribes: the three cameras, both follower joint_states (ros.observation), the controller
status (when to query: sync at chunk end, async ahead of it).
Publishes: names.ACTION_CHUNK_TOPIC (trajectory_msgs/JointTrajectory: VECTOR_NAMES, 50 points
40 ms apart, robot units, header stamp = observation time), names.VALUE_TOPIC
(std_msgs/Float32), names.future_image_topic(cam) (sensor_msgs/Image, with decode_future),
names.POLICY_LATENCY_TOPIC (JSON seconds per stage + each source's stamp),
names.POLICY_INFO_TOPIC (latched JSON; says UNTRAINED when no checkpoint is loaded),
names.POLICY_MARKERS_TOPIC (value/latency text for RViz).
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
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control import lockstep
from cosmos_policy_ros.control.chunks import MODES
from cosmos_policy_ros.control.trigger import QueryTrigger
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.ros import image, params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.observation import OBSERVATION_PARAMS, ObservationInputs, QueryLoop
from cosmos_policy_ros.ros.stamps import from_ns
from cosmos_policy_ros.ros.trajectory import to_msg
from cosmos_policy_ros.sim.tasks import TASKS

MODEL_PARAMS = (
    Param('preset', 'tiny', 'model preset (models/<preset>.yaml: tiny, small, 2b)',
          read_only=True),
    Param('checkpoint', '', "policy weights; '' runs the preset UNTRAINED (random weights)",
          read_only=True),
    Param('statistics', '', "dataset statistics JSON; '' = the checkpoint's, else "
          'config/sim_statistics.json',
          read_only=True),
    Param('text', 'minilm', "text embeddings: T5 pickle/safetensors cache path or 'minilm'",
          read_only=True),
    Param('device', 'cpu', 'torch device (cpu, cuda, cuda:1)', read_only=True),
    Param('dtype', 'float32', 'model dtype', choices=('float32', 'bfloat16', 'float16'),
          read_only=True),
    Param('num_steps', 10, 'denoising steps for the action chunk', min=1, max=100),
    Param('seed', 0, 'base noise seed (incremented per query)', min=0),
    Param('torch_threads', 0, 'torch CPU threads (0: torch default)', min=0),
)

REMOTE_PARAMS = (
    Param('backend', 'local', 'local: run the model in this process; remote: query a policy '
          'server (cosmos-policy-ros serve)', choices=('local', 'remote'), read_only=True),
    Param('server', 'ws://127.0.0.1:8000', 'remote: policy server URI (ws:// or wss://)',
          read_only=True),
    Param('server_timeout', 10.0, 'remote: longest wait for a chunk [s, wall]; a later reply '
          'is dropped with its connection', min=0.1, read_only=True),
)

PARAMS = MODEL_PARAMS + REMOTE_PARAMS + OBSERVATION_PARAMS + (
    Param('task', 'transfer_cube', f'task; its instruction conditions the policy {list(TASKS)}',
          read_only=True),
    Param('instruction', '', "override the task's instruction text ('' = the task's)",
          read_only=True),
    Param('calibration', 'aloha_sim', 'calibration (gripper constants for proprio)',
          read_only=True),
    Param('mode', 'sync', 'sync: query when the chunk ends; async: query ahead of it',
          choices=MODES, read_only=True),
    Param('async_trigger_steps', -1, 'async: query when <= this many actions remain '
          '(-1: from the measured latency + margin)', min=-1, max=50),
    Param('decode_future', False, 'decode and publish predicted future images'),
    Param('lockstep', False, 'sim lockstep (control.lockstep): query on finished chunks with '
          'observations after them; noise seeds from the episode seed and chunk index',
          read_only=True),
)


def load_model(p):
    """CosmosPolicy from the node's model parameters (shared with the planner node)."""
    import torch

    from cosmos_policy_ros.model.policy import CosmosPolicy
    if p.torch_threads:
        torch.set_num_threads(p.torch_threads)
    from cosmos_policy_ros.model.checkpoint import checkpoint_statistics
    statistics = (p.statistics or checkpoint_statistics(p.checkpoint)
                  or str(share_path('config', 'sim_statistics.json')))
    return CosmosPolicy.from_config(preset=p.preset, checkpoint=p.checkpoint or None,
                                    statistics=statistics, text=p.text, device=p.device,
                                    dtype=p.dtype)


def model_info(p, extra: dict | None = None) -> dict:
    return {'preset': p.preset, 'checkpoint': p.checkpoint, 'untrained': not p.checkpoint,
            'status': 'UNTRAINED (random weights)' if not p.checkpoint else 'trained',
            'device': p.device, 'dtype': p.dtype, 'num_steps': p.num_steps, **(extra or {})}


class Policy(Node):
    def __init__(self):
        super().__init__('policy')
        self.params = params.declare(self, PARAMS)
        p = self.params
        self.instruction = p.instruction or TASKS[p.task].instruction
        if p.backend == 'remote':
            from cosmos_policy_ros.serving.client import Observation, RemotePolicy  # no torch
            self.model = RemotePolicy(p.server, timeout=p.server_timeout,
                                      on_connect=self.on_server_connect)
        else:
            from cosmos_policy_ros.model.policy import Observation
            self.model = load_model(p)
        self.observation_type = Observation
        self.queries = 0
        group = ReentrantCallbackGroup()
        reliable = QoSProfile(depth=10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.chunk_pub = self.create_publisher(JointTrajectory, names.ACTION_CHUNK_TOPIC,
                                               reliable)
        self.value_pub = self.create_publisher(Float32, names.VALUE_TOPIC, reliable)
        self.latency_pub = self.create_publisher(String, names.POLICY_LATENCY_TOPIC, reliable)
        self.marker_pub = self.create_publisher(MarkerArray, names.POLICY_MARKERS_TOPIC,
                                                reliable)
        self.info_pub = self.create_publisher(String, names.POLICY_INFO_TOPIC, latched)
        self.future_pubs = {cam: self.create_publisher(Image, names.future_image_topic(cam),
                                                       reliable)
                            for cam in names.CAMERAS}
        self.inputs = ObservationInputs(self, load_calibration(p.calibration).gripper,
                                        p.freshness, p.sync_slop, callback_group=group)
        self.loop = QueryLoop(self, self.inputs,
                              QueryTrigger(mode=p.mode, trigger_steps=p.async_trigger_steps,
                                           finish_first=p.lockstep),
                              self.infer, callback_group=group, lockstep=p.lockstep)
        info = model_info(p, {'task': p.task, 'instruction': self.instruction, 'mode': p.mode})
        if p.backend == 'remote':
            info.update(backend='remote', server=p.server, preset='', checkpoint='',
                        untrained=None, status='remote: not connected yet')
            self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                                  reliable)
            self.create_timer(1.0, self.publish_remote_status, callback_group=group,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.info = info
        self.info_pub.publish(String(data=json.dumps(info)))
        self.get_logger().info(f'policy: preset {p.preset}, {info["status"]}, {p.mode} mode, '
                               f'{p.num_steps} steps, task "{self.instruction}"')
        if not p.checkpoint and p.backend == 'local':
            self.get_logger().warning('policy is UNTRAINED (no checkpoint): random weights')

    def infer(self, raw):
        p = self.params
        started = time.perf_counter()
        obs = self.inputs.assemble(raw)
        observation = self.observation_type(images=obs.images, proprio=obs.proprio,
                                            task=self.instruction)
        model_start = time.perf_counter()
        seed = (lockstep.noise_seed(p.seed, raw.stamp_ns * 1e-9) if p.lockstep
                else p.seed + self.queries)
        out = self.model.predict(observation, num_steps=p.num_steps, seeds=seed,
                                 decode_future=p.decode_future)
        self.queries += 1
        model_s = time.perf_counter() - model_start
        publish_start = time.perf_counter()
        self.chunk_pub.publish(to_msg(out.actions[0], raw.stamp_ns))
        published, published_mono = time.perf_counter(), time.monotonic()
        value = float(out.value[0])
        self.value_pub.publish(Float32(data=value))
        if p.decode_future and out.future_images:
            for cam, rgb in out.future_images.items():
                if cam in self.future_pubs:
                    frame = rgb[0] if rgb.ndim == 4 else rgb
                    self.future_pubs[cam].publish(image.to_msg(frame, from_ns(raw.stamp_ns),
                                                               f'{cam}_future'))
        node_latency = self.get_clock().now().nanoseconds * 1e-9 - raw.stamp_ns * 1e-9
        latency = {
            'query': self.queries, 'obs_stamp_ns': raw.stamp_ns, 'source_stamps_ns':
            raw.stamps_ns, 'convert_s': obs.convert_s, 'model_s': model_s,
            'publish_s': published - publish_start,
            'camera_to_publish_s': published_mono - raw.newest_receive,
            'inference_total_s': published - started, 'obs_age_at_publish_s': node_latency,
            'value': value, 'untrained': self.info['untrained'], 'noise_seed': seed,
            'model_stages_s': {k: float(v) for k, v in (out.timings or {}).items()}}
        self.latency_pub.publish(String(data=json.dumps(latency)))
        self.marker_pub.publish(value_markers(f'value {value:.2f}  model {model_s:.2f} s'
                                              + ('  UNTRAINED' if self.info['untrained'] else ''),
                                              raw.stamp_ns))
        return raw.stamp_ns, node_latency

    def on_server_connect(self, metadata: dict) -> None:
        """backend:=remote: (re)connected; say what the server runs."""
        server = {k: metadata.get(k) for k in ('preset', 'checkpoint', 'untrained', 'status',
                                               'device', 'dtype') if k in metadata}
        self.info = {**self.info, **server, 'backend': 'remote', 'server_metadata': server}
        self.info_pub.publish(String(data=json.dumps(self.info)))
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
        self.loop.close()


def value_markers(text: str, stamp_ns: int) -> MarkerArray:
    marker = Marker(ns='policy', id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                    text=text)
    marker.header.frame_id = 'world'
    marker.header.stamp = from_ns(stamp_ns)
    marker.pose.position.z = 0.8
    marker.pose.orientation.w = 1.0
    marker.scale.z = 0.05
    marker.color.r = marker.color.g = marker.color.b = marker.color.a = 1.0
    return MarkerArray(markers=[marker])


def main(args=None) -> None:
    run(Policy, args=args)
