"""schemathesis against the REST gateway of a real `maxwell dev`, from the OpenAPI document it serves:
generated paths, query strings, headers and bodies for every operation get no server error, and every
answer (200 or the SDK's error shape) matches the document's schemas. Bounded to finish in well under
a minute."""

import json
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from node import rest
from tests.helpers import compute_free_port, init_funded_home, start_dev_chain, stop_dev_chain

MAX_EXAMPLES = 12
REQUEST_TIMEOUT_S = 10
NOT_IMPLEMENTED = {"code": 12, "message": "Not Implemented", "details": []}

schema = schemathesis.openapi.from_dict(rest.compute_openapi(rest.compute_routes()))


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("rest_fuzz")
    init_funded_home(home, chain_id="maxwell-fuzz-1")
    address = f"127.0.0.1:{compute_free_port()}"
    process, _ = start_dev_chain(home, "300ms", "off", address)
    url = f"http://{address}"
    with urllib.request.urlopen(url + rest.OPENAPI_PATH, timeout=10) as response:
        assert json.loads(response.read()) == schema.raw_schema  # the document served is the one fuzzed
    yield url
    assert process.poll() is None, "maxwell dev died under the fuzzing"
    stop_dev_chain(process)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_requests_get_no_server_error_and_match_the_schema(case, base_url):
    response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
    if case.method.upper() != case.operation.method.upper():  # a method the route has not: 501, as the SDK's
        assert response.status_code == 501 and json.loads(response.content) == NOT_IMPLEMENTED, case.method
        return
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                             content_type_conformance])
