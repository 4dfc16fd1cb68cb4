"""Node parameter schemas, ROS-free.

A schema is a tuple of Param (cosmos_policy_ros/schemas/: one module per node family).
`cosmos_policy_ros.ros.params` declares a schema as ROS parameters (description, read-only,
min/max as the descriptor's range, an on-set validator); the graphs take their launch arguments
from the same Params (cosmos_policy_ros.graph.GraphArg) and the CLI its flags from those.
"""
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TYPES = (bool, int, float, str, list)


class ParamError(ValueError):
    """A parameter value that must not be used; the message names the field and the fix."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    read_only: bool = False

    def __post_init__(self):
        if not isinstance(self.default, _TYPES):
            raise TypeError(f'parameter {self.name!r}: default {self.default!r} must be one of '
                            'bool, int, float, str or list')
        if isinstance(self.default, list) and not self.default:
            raise TypeError(f'parameter {self.name!r}: a list default must be non-empty so its '
                            'element type is known')

    def check(self, value: Any) -> None:
        """Raise ParamError naming the field and the fix unless `value` is acceptable."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ParamError(f'parameter {self.name!r}: expected {expected.__name__}, got '
                             f'{type(value).__name__} {value!r}')
        if self.choices and value not in self.choices:
            raise ParamError(f'parameter {self.name!r}: {value!r} is not one of '
                             f'{list(self.choices)}')
        if self.min is not None and isinstance(value, (int, float)) and value < self.min:
            raise ParamError(f'parameter {self.name!r}: {value} is below the minimum {self.min}')
        if self.max is not None and isinstance(value, (int, float)) and value > self.max:
            raise ParamError(f'parameter {self.name!r}: {value} is above the maximum {self.max}')


def pick(schema: Sequence[Param], *names: str) -> tuple:
    """The Params of `schema` called `names`, in that order (KeyError names an unknown one)."""
    by_name = {param.name: param for param in schema}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise KeyError(f'parameters {unknown} are not in the schema; known: {sorted(by_name)}')
    return tuple(by_name[name] for name in names)


def check_values(schema: Sequence[Param], values: Mapping[str, Any],
                 where: str = 'node') -> None:
    """Raise ValueError listing every unknown or invalid value (use_sim_time is ROS's own)."""
    by_name = {param.name: param for param in schema}
    problems = []
    for name, value in values.items():
        if name == 'use_sim_time':
            continue
        if name not in by_name:
            problems.append(f'unknown parameter {name!r}; known: {sorted(by_name)}')
            continue
        try:
            by_name[name].check(value)
        except ParamError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError(f'{where}: ' + '; '.join(problems))
