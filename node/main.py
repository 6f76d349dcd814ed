"""The `maxwell` command: node.cli's chain, key and query commands, plus the market, inference and
worker commands that node.infer_cmd mounts on them."""

from node import infer_cmd
from node.cli import app

infer_cmd.mount(app)
