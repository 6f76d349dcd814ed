import pytest

from tests.ibc.hermes import HERMES


def pytest_collection_modifyitems(config, items):
    if not HERMES.is_file():
        raise pytest.UsageError(f"{HERMES} is missing: run `make tools-ibc`")
