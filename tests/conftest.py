"""Shared fixtures: funded test accounts, a fresh App on real LevelDB, the digits circuits and their proofs."""

import json
import os

import pytest

from chain.app import App
from tests.helpers import DIGITS, REPO, finalize, init_app, make_account
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
