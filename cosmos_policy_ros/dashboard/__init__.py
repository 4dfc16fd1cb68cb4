"""What an operator sees: RViz marker content (markers.py, ROS-free) and the browser dashboard
(`cosmos-policy-ros dashboard`: live graph or a recorded bag)."""
