"""`maxwell debug`: look into a stopped node's data.

`verify-store` walks every store's tree at the latest height (chain.store.Store.verify) and lists
each mismatch between the trees, the flat index of latest values and the app hash; it exits 1 if
there is any. `mount` adds the commands to node.cli's app (node.main does).
"""

import typer

from node import cli
from node.cli import CliError, Home, Output, OutputFormat

APPLICATION_DB = "data/application.db"

debug_app = cli.make_group("debug")


@debug_app.command("verify-store")
def verify_store(home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text):
    """Check every store's tree at the latest height against the flat index and the app hash."""
    from chain.app import STORES
    from chain.store import Store
    path = home / APPLICATION_DB
    if not path.is_dir():
        raise CliError(f"no application state at {path}")
    store = Store(str(path), STORES, check=False)
    try:
        height, app_hash, (keys, mismatches) = store.height, store.app_hash, store.verify()
    finally:
        store.close()
    record = {"height": str(height), "app_hash": app_hash.hex().upper(), "keys": keys, "ok": not mismatches,
              "mismatches": [{"store": m.store, "key": m.key.hex(), "side": m.side} for m in mismatches]}
    lines = [f"{m.store or 'app hash'} {m.key.hex()}: {m.side}" for m in mismatches]
    cli.show(output, record, lines or [
        f"OK: {keys} keys in {len(STORES)} stores at height {height}, app hash {record['app_hash']}"])
    if mismatches:
        cli.fail(f"{len(mismatches)} mismatches at height {height}: {path} is damaged")


def mount() -> None:
    cli.GROUPS["debug"] = debug_app
