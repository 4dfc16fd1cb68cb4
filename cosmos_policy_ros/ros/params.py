"""Declare a node's parameters from its ROS-free schema (cosmos_policy_ros.params)."""
from types import SimpleNamespace

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)

from cosmos_policy_ros.params import Param, ParamError


def declare(node, schema, on_change=None) -> SimpleNamespace:
    """Declare every Param (with description), validate the launch values, and keep the
    returned namespace current on later `ros2 param set` calls. Invalid values are rejected
    with the schema's reason; invalid launch values raise, so the node exits with the reason.
    """
    by_name = {param.name: param for param in schema}
    values = SimpleNamespace()
    for param in schema:
        descriptor = describe(param)
        value = node.declare_parameter(param.name, param.default, descriptor).value
        value = _coerce(param, value)
        try:
            param.check(value)
        except ParamError as exc:
            raise ValueError(f'{node.get_fully_qualified_name()}: {exc}') from None
        setattr(values, param.name, value)

    def validate(parameters) -> SetParametersResult:
        for parameter in parameters:
            param = by_name.get(parameter.name)
            if param is None:
                continue
            try:
                param.check(_coerce(param, parameter.value))
            except ParamError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        for parameter in parameters:
            if parameter.name in by_name:
                setattr(values, parameter.name, _coerce(by_name[parameter.name], parameter.value))
        if on_change is not None:
            on_change(values)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(validate)
    return values


_INT64 = 2 ** 63 - 1
_DOUBLE = 1.7976931348623157e308


def describe(param: Param) -> ParameterDescriptor:
    """The ROS descriptor of a Param: description, read-only, choices in the description
    and min/max as the integer or floating-point range (`ros2 param describe` shows them)."""
    description = param.description
    if param.choices:
        description += f' (one of {list(param.choices)})'
    descriptor = ParameterDescriptor(description=description, read_only=param.read_only)
    if param.min is None and param.max is None or isinstance(param.default, bool):
        return descriptor
    if isinstance(param.default, int):
        descriptor.integer_range = [IntegerRange(
            from_value=int(param.min) if param.min is not None else -_INT64,
            to_value=int(param.max) if param.max is not None else _INT64, step=0)]
    elif isinstance(param.default, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(param.min) if param.min is not None else -_DOUBLE,
            to_value=float(param.max) if param.max is not None else _DOUBLE, step=0.0)]
    return descriptor


def _coerce(param: Param, value):
    if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(param.default, list) and value is not None and not isinstance(value, list):
        return list(value)
    return value
