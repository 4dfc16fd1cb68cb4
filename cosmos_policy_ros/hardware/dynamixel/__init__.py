"""Dynamixel Protocol 2.0: control tables, framing, the bus driver and a pty bus emulator."""
