"""The `maxwell` command: node.cli's app, whose command groups (node.cli.LAZY_GROUPS: keys, query, tx, market,
worker, ...) load the modules that make them (node.infer_cmd, node.staking_cmd, node.ibc_cmd, node.debug_cmd,
node.circuits_cmd) only when a command names them."""

import gc

from node.cli import app

__all__ = ["app", "main"]


def main() -> None:
    """Runs the app; freezes the heap as it ends, so the interpreter's last collection does not walk every object
    the imports made (about 40 ms of a query's 250)."""
    try:
        app()
    finally:
        gc.freeze()
