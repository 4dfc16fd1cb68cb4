"""CLI subcommands (see cosmos_policy_ros.cli)."""
