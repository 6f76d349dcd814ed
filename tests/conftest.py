"""Shared fixtures: funded test accounts, a fresh App on real LevelDB, the digits circuits and samples."""

import json
import os

import pytest

from chain.app import App
from tests.helpers import DIGITS, REPO, finalize, init_app, make_account
from zk.artifacts import load_manifest


@pytest.fixture(scope="session", autouse=True)
def subprocesses_run_this_checkout():
    """A `maxwell` or Python subprocess imports this checkout's code, not the one its venv was installed from."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(DIGITS)


@pytest.fixture(scope="module")
def samples():
    """The digits circuits' held-out samples: inputs and labels."""
    return json.loads((DIGITS / "test.json").read_text())


@pytest.fixture
def accounts():
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "carol"])]


@pytest.fixture
def app(tmp_path, accounts):
    application = App(str(tmp_path / "data"))
    init_app(application, accounts)
    finalize(application, 1, [])
    application.commit()
    yield application
    application.close()
