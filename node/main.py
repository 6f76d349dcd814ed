"""The `maxwell` command: node.cli's app, whose command groups (node.cli.LAZY_GROUPS: keys, query, tx, market,
worker, ...) load the modules that make them (node.infer_cmd, node.staking_cmd, node.ibc_cmd, node.debug_cmd,
node.circuits_cmd) only when a command names them."""

from node.cli import app

__all__ = ["app"]
