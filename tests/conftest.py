"""Shared fixtures: funded test accounts, a fresh App on real LevelDB, the digits circuits and their proofs."""

import json
import logging
import os

import pytest

from chain.app import App
from node import rpc
from node.devchain import DevChain
from tests.helpers import DIGITS, REPO, KVStoreApp, finalize, init_app, make_account, make_home, wait_for
from zk.artifacts import load_manifest
from zk.prove import prove_circuit, prove_layers


@pytest.fixture(scope="session", autouse=True)
def subprocesses_run_this_checkout():
    """A `maxwell` or Python subprocess imports this checkout's code, not the one its venv was installed from."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture(scope="session")
def manifest():
    return load_manifest(DIGITS)


@pytest.fixture(scope="session")
def samples():
    """The digits circuits' held-out samples: inputs and labels."""
    return json.loads((DIGITS / "test.json").read_text())


@pytest.fixture(scope="session")
def pk_dir(tmp_path_factory):
    """Where proving keys are regenerated, once per session."""
    return tmp_path_factory.mktemp("pk")


@pytest.fixture(scope="session")
def digits_proofs(manifest, samples, pk_dir):
    """Real EZKL proofs, made once: the layers of samples 0 and 1, and the whole model on sample 0."""
    return {
        0: prove_layers(manifest, samples["inputs"][0], pk_dir),
        1: prove_layers(manifest, samples["inputs"][1], pk_dir),
        "whole": prove_circuit(manifest.circuits["model"], samples["inputs"][0], pk_dir),
    }


@pytest.fixture
def accounts():
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "carol"])]


@pytest.fixture
def people():
    """Four funded accounts: in the staking tests alice and bob run the genesis validators."""
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "carol", "dave"])]


@pytest.fixture
def app(tmp_path, accounts):
    application = App(str(tmp_path / "data"))
    init_app(application, accounts)
    finalize(application, 1, [])
    application.commit()
    yield application
    application.close()


@pytest.fixture(scope="module")
def kv_node(tmp_path_factory):
    """A dev chain running the small KVStoreApp, shared by a module's RPC tests."""
    home = tmp_path_factory.mktemp("rpc-home")
    make_home(home)
    app = KVStoreApp(str(home / "data"))
    chain = DevChain(home, app=app, block_time_ms=100)
    chain.start("tcp://127.0.0.1:0", rpc.RPCConfig(timeout_broadcast_tx_commit=5))
    wait_for(lambda: chain.blockstore.get_height() >= 2)
    yield chain
    chain.stop()
    app.close()


@pytest.fixture(autouse=True)
def drop_closed_log_handlers():
    """A command run in-process (CliRunner) leaves a log handler on its own stderr, closed when it returns;
    the dev chains other tests keep running would log to it."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)
