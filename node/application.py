"""The app as a node runs it: chain.app.App with the node's services plugged in."""

from chain.app import App
from node.sighelper import SignatureHelper
from node.snapshots import DEFAULT_INTERVAL, Snapshots
from zk.verify import ModelVerifier


def open_app(data_dir: str, keep_recent: int = 100, heat_sensor=None, snapshot_interval: int = DEFAULT_INTERVAL) -> App:
    """An App verifying proofs with EZKL (circuits mirrored under `data_dir`), signatures ahead of each
    large block in a helper process, and keeping a state-sync snapshot every `snapshot_interval` heights."""
    return App(data_dir, keep_recent=keep_recent, heat_sensor=heat_sensor, verifier=ModelVerifier(data_dir),
               signature_helper=SignatureHelper(), snapshots=Snapshots(f"{data_dir}/snapshots", snapshot_interval))
