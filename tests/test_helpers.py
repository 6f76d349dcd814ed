"""What the shared test helpers promise the other tests."""

import subprocess
import sys

import pytest

from chain import inference, market
from chain.errors import InsufficientFundsError, TxError
from tests import helpers


def test_subprocesses_import_this_checkout(tmp_path):
    imported = subprocess.run([sys.executable, "-c", "import chain, node; print(chain.__file__, node.__file__)"],
                              cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert imported == [str(helpers.REPO / "chain" / "__init__.py"), str(helpers.REPO / "node" / "__init__.py")]


@pytest.mark.parametrize("ci, outcome", [(None, pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_vectors_skip_but_fail_in_ci(tmp_path, monkeypatch, ci, outcome):
    monkeypatch.setattr(helpers, "VECTORS", tmp_path / "missing")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"not found at .*missing/cometbft/header\.json: .*shared folder.*\.\./shared/vectors/"):
        helpers.require_vectors("cometbft/header.json")


def test_present_vectors_are_given_in_ci_too(tmp_path, monkeypatch):
    (tmp_path / "ics23").mkdir()
    monkeypatch.setattr(helpers, "VECTORS", tmp_path)
    monkeypatch.setenv("CI", "true")
    assert helpers.require_vectors("ics23") == tmp_path / "ics23"


def test_error_codes_are_those_the_modules_define():
    codes = helpers.get_error_codes()
    for error in (InsufficientFundsError, market.OrderNotFoundError, inference.RequestNotFoundError):
        assert helpers.code_of(error) in codes
    assert helpers.code_of(TxError) not in codes  # the base class, no error of its own
