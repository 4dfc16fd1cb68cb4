"""Camera node -> subscriber: delivered frame rate and capture-to-receive latency, with the Fast
DDS defaults and with config/fastdds_loopback.xml (the camera node's default).

A generated 640x480 video is played by the camera node (its own process) at --fps; this process
subscribes with sensor-data QoS, as the policy and recorder do. Published counts come from the
node's /diagnostics. The CPU is shared with everything else running, so treat the latencies as
upper bounds.

    .venv/bin/python benchmarks/camera_stream.py [--fps 30] [--seconds 8] \
        [--plot runs/camera_stream.png]
"""
import argparse
import tempfile
import time
from pathlib import Path

from cosmos_policy_ros.rosenv import apply_loopback_env, set_profile

apply_loopback_env()

import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cosmos_policy_ros import names  # noqa: E402
from cosmos_policy_ros.graph import NodeSpec  # noqa: E402
from cosmos_policy_ros.hardware.cameras.video_file import write_video_file  # noqa: E402
from cosmos_policy_ros.paths import share_path  # noqa: E402
from cosmos_policy_ros.procs import GraphProcesses  # noqa: E402
from cosmos_policy_ros.ros.client import GraphClient, diagnostic_counts  # noqa: E402
from cosmos_policy_ros.ros.stamps import to_ns  # noqa: E402

# A profile file that changes nothing: Fast DDS's own defaults (512 KB shared memory + UDP).
_DEFAULTS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <participant profile_name="defaults" is_default_profile="true"><rtps/></participant>
</profiles></dds>
"""


def measure(label: str, profile: Path, video: Path, fps: float, seconds: float,
            log_dir: Path) -> dict:
    spec = NodeSpec('camera', 'cam_high', parameters={
        'camera': 'cam_high', 'backend': 'video_file', 'device': str(video), 'fps': fps,
        'diagnostics_period': 0.5})
    topic = names.camera_topic('cam_high')
    arrivals = []
    profile_env: dict = {}
    set_profile(profile_env, profile)          # the variable of Fast DDS 2.x and of 3.x
    with GraphProcesses([spec], log_dir / label, extra_env=profile_env) as graph:
        client = GraphClient(f'bench_{label}')
        try:
            client.subscribe(topic, Image, sensor=True, maxlen=10,
                             callback=lambda msg: arrivals.append(
                                 (time.time_ns(), to_ns(msg.header.stamp))))
            diagnostics = client.subscribe(names.DIAGNOSTICS_TOPIC, DiagnosticArray)
            if not client.wait_for(lambda: diagnostic_counts(diagnostics, 'published'), 30.0):
                graph.check_alive()
                raise RuntimeError(f'{label}: no diagnostics from the camera node')
            time.sleep(1.0)                       # discovery settles
            settled = len(diagnostic_counts(diagnostics, 'published'))
            for _ in tqdm(range(int(seconds * 10)), desc=label, unit='0.1 s'):
                time.sleep(0.1)
            time.sleep(0.6)                       # one more diagnostics period
            graph.check_alive()
        finally:
            client.close()
    # Sent and received over one interval on the camera node's clock: between two of its
    # diagnostics arrays, its published counter and the frames captured in that interval.
    counts = diagnostic_counts(diagnostics, 'published')
    (first_ns, first), (last_ns, last) = counts[settled - 1], counts[-1]
    received = [(rx, stamp) for rx, stamp in arrivals if first_ns < stamp <= last_ns]
    span = (last_ns - first_ns) / 1e9
    latency_ms = np.array([(rx - stamp) / 1e6 for rx, stamp in received])
    return {'label': label, 'published': last - first, 'received': len(received),
            'seconds': span, 'received_fps': len(received) / span, 'latency_ms': latency_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--fps', type=float, default=30.0)
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--plot', default='runs/camera_stream.png')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='camera_stream_') as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (names.IMAGE_HEIGHT, names.IMAGE_WIDTH, 3), np.uint8)
                  for _ in range(30)]
        video = write_video_file(folder / 'noise.avi', frames, args.fps)
        defaults = folder / 'defaults.xml'
        defaults.write_text(_DEFAULTS_XML)
        results = [measure(label, profile, video, args.fps, args.seconds, folder / 'logs')
                   for label, profile in (
                       ('fastdds_defaults', defaults),
                       ('large_data_profile', share_path('config', 'fastdds_loopback.xml')))]
    print(f'\n640x480 rgb8 at {args.fps:g} fps for about {args.seconds:g} s (shared CPU: '
          'latencies are upper bounds)')
    print(f'{"transport":20s} {"published":>9s} {"received":>8s} {"rx fps":>7s} {"lost":>6s} '
          f'{"lat p50":>8s} {"lat p95":>8s}')
    for r in results:
        lost = 1.0 - r['received'] / max(r['published'], 1)
        lat = r['latency_ms']
        p50, p95 = (np.percentile(lat, 50), np.percentile(lat, 95)) if lat.size else (np.nan,
                                                                                     np.nan)
        print(f'{r["label"]:20s} {r["published"]:9d} {r["received"]:8d} '
              f'{r["received_fps"]:7.1f} {lost:6.1%} {p50:6.1f}ms {p95:6.1f}ms')
    figure, (rate_ax, lat_ax) = plt.subplots(1, 2, figsize=(10, 4))
    labels = [r['label'] for r in results]
    rate_ax.bar(labels, [r['received_fps'] for r in results], color=['tab:red', 'tab:green'])
    rate_ax.axhline(args.fps, color='k', linestyle='--', label=f'camera {args.fps:g} fps')
    rate_ax.set_ylabel('frames received per second')
    rate_ax.legend()
    for r in results:
        if r['latency_ms'].size:
            lat_ax.hist(r['latency_ms'], bins=40, alpha=0.6, label=r['label'])
    lat_ax.set_xlabel('capture -> receive latency [ms]')
    lat_ax.set_ylabel('frames')
    lat_ax.legend()
    figure.suptitle('camera node on loopback, sensor-data QoS subscriber')
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=100)
    print(f'plot: {args.plot}')


if __name__ == '__main__':
    main()
