"""`cosmos-policy-ros export BAG_DIR... --output DIR [--recover]`: bags -> ALOHA HDF5 + stats."""
from pathlib import Path

from cosmos_policy_ros import names


def add_arguments(parser) -> None:
    parser.add_argument('bags', nargs='+', metavar='BAG_DIR',
                        help='episode bag directories, or directories holding episode_* bags')
    parser.add_argument('--output', required=True, help='where episode_<i>.hdf5 and '
                        'dataset_statistics.json are written')
    parser.add_argument('--recover', action='store_true',
                        help='first recover *.partial episodes (left by a crash) in the inputs')
    parser.add_argument('--calibration', default='',
                        help='gripper preset source (default: the one stored in each bag)')
    parser.add_argument('--cameras', nargs='+', default=list(names.CAMERAS),
                        choices=names.CAMERAS, help='cameras to export')
    parser.add_argument('--compress', action='store_true',
                        help='JPEG images with /compress_len (ALOHA compress=True layout)')
    parser.add_argument('--jpeg-quality', type=int, default=50,
                        help='JPEG quality with --compress')
    parser.add_argument('--skip-bad-frames', action='store_true',
                        help='drop camera frames with a wrong encoding/size instead of refusing')
    parser.add_argument('--plot', action='store_true',
                        help='write export_summary.png (joints of the first episode, lag)')


def find_bags(paths) -> list:
    """Bag directories among `paths` (a bag has metadata.yaml; else its episode_* children)."""
    bags = []
    for path in map(Path, paths):
        if (path / 'metadata.yaml').is_file():
            bags.append(path)
        elif path.is_dir():
            children = [p for p in path.iterdir() if (p / 'metadata.yaml').is_file()]
            bags += sorted(children, key=lambda p: _episode_key(p.name))
        else:
            raise FileNotFoundError(f'{path}: not a bag directory (no metadata.yaml) nor a '
                                    'directory of bags')
    return bags


def _episode_key(name: str):
    tail = name.rsplit('_', 1)[-1]
    return (0, int(tail), name) if tail.isdigit() else (1, 0, name)


def recover_all(paths) -> list:
    from cosmos_policy_ros.data.bag import find_partials, recover_partial
    results = []
    for path in map(Path, paths):
        partials = [path] if path.name.endswith('.partial') else find_partials(path)
        for partial in partials:
            result = recover_partial(partial)
            print(f'recovered {result.bag_dir}: {result.message_count} messages, '
                  f'{result.duration_s:.1f} s ({result.stopped_by})')
            results.append(result)
    return results


def export_and_report(bags, output: Path, config, plot: bool) -> int:
    from cosmos_policy_ros.data.export import export_dataset
    summaries, failures, stats = export_dataset(bags, output, config)
    for summary in summaries:
        print(summary.line())
    for bag, error in failures.items():
        print(f'error: {bag}: {error}')
    if stats:
        print(f'statistics: {stats}')
    if plot and summaries:
        from cosmos_policy_ros.data.plots import plot_episode
        print(f'plot: {plot_episode(summaries[0].hdf5, summaries, output / "export_summary.png")}')
    print(f'exported {len(summaries)} of {len(bags)} episode(s) to {output}')
    return 0 if summaries and not failures else 1


def run(args) -> int:
    from cosmos_policy_ros.data.bag import BagError
    from cosmos_policy_ros.data.export import ExportConfig
    try:
        if args.recover:
            recover_all(args.bags)
        bags = find_bags(p for p in args.bags if not p.rstrip('/').endswith('.partial'))
        config = ExportConfig(cameras=tuple(args.cameras), calibration=args.calibration,
                              compress=args.compress, jpeg_quality=args.jpeg_quality,
                              skip_bad_frames=args.skip_bad_frames)
    except (BagError, FileNotFoundError, ValueError) as exc:
        print(f'error: {exc}')
        return 2
    if not bags:
        print(f'error: no episode bags found in {args.bags}')
        return 2
    return export_and_report(bags, Path(args.output), config, args.plot)
