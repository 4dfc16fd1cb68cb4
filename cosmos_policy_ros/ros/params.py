"""Declare a node's parameters from its ROS-free schema (cosmos_policy_ros.params)."""
from types import SimpleNamespace

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

from cosmos_policy_ros.params import Param


def declare(node, schema, on_change=None) -> SimpleNamespace:
    """Declare every Param (with description), validate the launch values, and keep the
    returned namespace current on later `ros2 param set` calls. Invalid values are rejected
    with the schema's reason; invalid launch values raise, so the node exits with the reason.
    """
    by_name = {param.name: param for param in schema}
    values = SimpleNamespace()
    for param in schema:
        descriptor = ParameterDescriptor(description=param.description, read_only=param.read_only)
        value = node.declare_parameter(param.name, param.default, descriptor).value
        value = _coerce(param, value)
        reason = param.check(value)
        if reason:
            raise ValueError(f'{node.get_fully_qualified_name()}: {reason}')
        setattr(values, param.name, value)

    def validate(parameters) -> SetParametersResult:
        for parameter in parameters:
            param = by_name.get(parameter.name)
            if param is None:
                continue
            reason = param.check(_coerce(param, parameter.value))
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for parameter in parameters:
            if parameter.name in by_name:
                setattr(values, parameter.name, _coerce(by_name[parameter.name], parameter.value))
        if on_change is not None:
            on_change(values)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(validate)
    return values


def _coerce(param: Param, value):
    if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(param.default, list) and value is not None and not isinstance(value, list):
        return list(value)
    return value
