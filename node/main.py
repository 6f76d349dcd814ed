"""The `maxwell` command: node.cli's chain, key and query commands, plus the market, inference and
worker commands that node.infer_cmd mounts on them, staking and slashing from node.staking_cmd, IBC from node.ibc_cmd, and
the `debug` commands of node.debug_cmd."""

from node import debug_cmd, ibc_cmd, infer_cmd, staking_cmd
from node.cli import app

infer_cmd.mount(app)
staking_cmd.mount(app)
ibc_cmd.mount(app)
debug_cmd.mount(app)
