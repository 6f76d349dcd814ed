"""The app as a node runs it: chain.app.App with the node's services plugged in."""

from pathlib import Path

from chain import auth, bank, inference
from chain.app import App, compute_default_genesis
from node.sighelper import SignatureHelper
from node.snapshots import DEFAULT_INTERVAL, Snapshots
from zk.models import compute_genesis_models
from zk.verify import ModelVerifier

DIGITS_MANIFEST = Path(__file__).resolve().parents[1] / "circuits" / "digits" / "manifest.json"


def open_app(data_dir: str, keep_recent: int = 100, heat_sensor=None, snapshot_interval: int = DEFAULT_INTERVAL,
             minimum_gas_price=None) -> App:
    """An App verifying proofs with EZKL (circuits mirrored under `data_dir`), signatures ahead of each
    large block in a helper process, and keeping a state-sync snapshot every `snapshot_interval` heights."""
    return App(data_dir, keep_recent=keep_recent, heat_sensor=heat_sensor, verifier=ModelVerifier(data_dir),
               signature_helper=SignatureHelper(), snapshots=Snapshots(f"{data_dir}/snapshots", snapshot_interval),
               minimum_gas_price=minimum_gas_price)


def compute_app_state(authority: str = "") -> dict:
    """The app_state `maxwell init` writes: every module's defaults and the digits model registered."""
    models = compute_genesis_models(DIGITS_MANIFEST)
    return compute_default_genesis(auth=auth.compute_default_genesis(), bank=bank.compute_default_genesis(),
                                   inference=inference.compute_default_genesis(authority, models))
