"""cosmos_policy_ros.dashboard.markers items -> visualization_msgs/MarkerArray."""
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from cosmos_policy_ros.dashboard.markers import LineStrip, Text
from cosmos_policy_ros.ros.stamps import from_ns


def to_marker(item, stamp_ns: int) -> Marker:
    marker = Marker(ns=item.ns, id=item.id, action=Marker.ADD)
    marker.header.frame_id = item.frame
    marker.header.stamp = from_ns(stamp_ns)
    marker.pose.orientation.w = 1.0
    if isinstance(item, LineStrip):
        marker.type = Marker.LINE_STRIP
        marker.scale.x = float(item.width)
        marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in item.points]
        marker.colors = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))
                         for r, g, b, a in item.colors]
        marker.color.a = 1.0
    elif isinstance(item, Text):
        marker.type = Marker.TEXT_VIEW_FACING
        marker.text = item.text
        marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = item.position
        marker.scale.z = float(item.height)
        marker.color.r = marker.color.g = marker.color.b = marker.color.a = 1.0
    else:
        raise TypeError(f'no marker for {type(item).__name__}')
    return marker


def marker_array(items, stamp_ns: int, replace: bool = True) -> MarkerArray:
    """The items as one MarkerArray; `replace` first deletes the previous query's markers (a
    planner with fewer candidates must not leave stale paths behind)."""
    markers = [Marker(action=Marker.DELETEALL)] if replace else []
    return MarkerArray(markers=markers + [to_marker(item, stamp_ns) for item in items])
