"""Simulated ALOHA tasks (ROS-free, no MuJoCo import): names, instructions, episode lengths."""
from dataclasses import dataclass


@dataclass(frozen=True)
class SimTask:
    name: str
    instruction: str          # language instruction used for the policy's text conditioning
    scene_xml: str            # gym-aloha asset for joint-position control
    episode_seconds: float    # scripted demonstration length (sim time)


TASKS = {
    'transfer_cube': SimTask('transfer_cube', 'transfer the red cube to the other arm',
                             'bimanual_viperx_transfer_cube.xml', 8.0),
    'insertion': SimTask('insertion', 'insert the peg into the socket',
                         'bimanual_viperx_insertion.xml', 8.0),
}


def get_task(name: str) -> SimTask:
    if name not in TASKS:
        import difflib
        close = difflib.get_close_matches(name, TASKS, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(f'unknown task {name!r}{hint}; known tasks: {sorted(TASKS)}')
    return TASKS[name]
