"""RViz marker content, ROS-free: the chunk preview, the planner's candidates, status text.

A chunk preview is the 50-step end-effector path of each arm (FK of the chunk's joint targets,
cosmos_policy_ros.robot.kinematics), fading from opaque (now) to faint (2 s ahead). Planner
candidates are the same paths for every candidate chunk, coloured by value from red (lowest)
to green (highest), the chosen one drawn thicker. cosmos_policy_ros.ros.markers turns these into
visualization_msgs/Marker.
"""
from dataclasses import dataclass

import numpy as np

from cosmos_policy_ros.robot.description import ROOT_LINK
from cosmos_policy_ros.robot.kinematics import Kinematics, ee_paths

ARM_COLORS = {'follower_left': (0.3, 0.55, 1.0), 'follower_right': (1.0, 0.55, 0.25)}
PREVIEW_WIDTH = 0.006        # line width [m]
CANDIDATE_WIDTH = 0.003
CHOSEN_WIDTH = 0.008


@dataclass(frozen=True)
class LineStrip:
    ns: str
    id: int
    points: np.ndarray           # (N, 3) [m] in `frame`
    colors: np.ndarray           # (N, 4) rgba in [0, 1]
    width: float
    frame: str = ROOT_LINK


@dataclass(frozen=True)
class Text:
    ns: str
    id: int
    text: str
    position: tuple              # (x, y, z) [m] in `frame`
    height: float = 0.04
    frame: str = ROOT_LINK


def value_color(value: float, low: float, high: float) -> tuple:
    """Red (low) -> yellow -> green (high); a single value (high == low) is green."""
    t = 1.0 if high <= low else float(np.clip((value - low) / (high - low), 0.0, 1.0))
    return (min(1.0, 2.0 * (1.0 - t)), min(1.0, 2.0 * t), 0.1)


def chunk_preview(kinematics: Kinematics, chunk, ns: str = 'chunk_preview') -> list:
    """One LineStrip per arm: the end-effector path of a (50, 14) chunk, fading with time."""
    paths = ee_paths(kinematics, chunk)
    strips = []
    for index, (arm, points) in enumerate(paths.items()):
        alpha = np.linspace(1.0, 0.25, len(points))
        colors = np.column_stack([np.tile(ARM_COLORS[arm], (len(points), 1)), alpha])
        strips.append(LineStrip(ns, index, points, colors, PREVIEW_WIDTH))
    return strips


def planner_candidates(kinematics: Kinematics, actions, scores, chosen: int,
                       ns: str = 'planner_candidates') -> list:
    """LineStrips of every candidate's paths coloured by its value, plus a value label at
    the end of each candidate's left path. actions (N, 50, 14), scores (N,)."""
    actions, scores = np.asarray(actions, dtype=float), np.asarray(scores, dtype=float)
    if actions.ndim != 3 or len(actions) != len(scores):
        raise ValueError(f'actions must be (N, steps, 14) with one score each, got '
                         f'{actions.shape} and {scores.shape}')
    if not 0 <= chosen < len(scores):
        raise ValueError(f'chosen candidate {chosen} is outside 0..{len(scores) - 1}')
    finite = scores[np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    items = []
    for candidate, (chunk, score) in enumerate(zip(actions, scores)):
        rgb = value_color(score, low, high) if np.isfinite(score) else (0.5, 0.5, 0.5)
        width = CHOSEN_WIDTH if candidate == chosen else CANDIDATE_WIDTH
        paths = ee_paths(kinematics, chunk)
        for side, points in enumerate(paths.values()):
            colors = np.tile((*rgb, 1.0 if candidate == chosen else 0.6), (len(points), 1))
            items.append(LineStrip(ns, 2 * candidate + side, points, colors, width))
        end = paths['follower_left'][-1]
        label = f'{score:.2f}' + (' *' if candidate == chosen else '')
        items.append(Text(f'{ns}_values', candidate, label,
                          (float(end[0]), float(end[1]), float(end[2]) + 0.03)))
    return items


# Status texts float above the table, one line each: policy value/latency, controller state.
POLICY_TEXT_POSITION = (0.0, 0.5, 0.8)
CONTROLLER_TEXT_POSITION = (0.0, 0.5, 0.74)
# Keys of control.runtime's status counts worth a glance.
CONTROLLER_COUNTS = ('chunks_accepted', 'chunks_rejected', 'step_clamped', 'holds')


def policy_text(value: float, model_s: float, untrained: bool, ns: str = 'policy') -> Text:
    return Text(ns, 0, f'value {value:.2f}  model {model_s:.2f} s'
                + ('  UNTRAINED' if untrained else ''), POLICY_TEXT_POSITION, 0.05)


def controller_text(status: dict, ns: str = 'controller') -> Text:
    """A controller status (control.trigger.ControllerStatus as a dict) as one line."""
    counts = status.get('counts') or {}
    shown = '  '.join(f'{key} {counts[key]}' for key in CONTROLLER_COUNTS if key in counts)
    reason = f' ({status["reason"]})' if status.get('reason') else ''
    return Text(ns, 0, f'controller {status.get("state", "?")}{reason}  remaining '
                f'{status.get("remaining", "?")}  {shown}'.rstrip(),
                CONTROLLER_TEXT_POSITION, 0.035)
