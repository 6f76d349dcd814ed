"""`maxwell dev`'s gRPC server against a client built from the Cosmos SDK's own .proto files.

`make upstream-protos` fetches the SDK's protos (and gogoproto's, cosmos_proto's, googleapis') through the
Go module proxy into .tools/; this test compiles the services' import closure with grpcio-tools and runs
tests/upstream_grpc_client.py on the generated stubs, in a process of its own (maxwell's protos define
the same names). Also here: reflection, and maxwell's protos checked field by field against the SDK's.
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from chain import crypto
from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx_pb2
from chain.tx import compute_tx_hash, sign_tx
from node import client, grpc_server
from tests.helpers import (
    ALICE, GENESIS_AMOUNT, MNEMONIC, REPO, compute_free_port, init_funded_home, start_dev_chain, stop_dev_chain,
)

CLIENT = Path(__file__).with_name("upstream_grpc_client.py")
SERVICE_PROTOS = (
    "cosmos/bank/v1beta1/query.proto", "cosmos/auth/v1beta1/query.proto", "cosmos/tx/v1beta1/service.proto",
    "cosmos/base/tendermint/v1beta1/query.proto", "cosmos/base/node/v1beta1/query.proto",
    "cosmos/staking/v1beta1/query.proto", "cosmos/slashing/v1beta1/query.proto",
)
ANY_PROTOS = ("cosmos/bank/v1beta1/tx.proto", "cosmos/crypto/secp256k1/keys.proto", "cosmos/crypto/ed25519/keys.proto")
IMPORT_PATTERN = re.compile(r'^import\s+(?:public\s+)?"([^"]+)";', re.MULTILINE)
WELL_KNOWN = "google/protobuf/"
BOB = crypto.encode_address(bytes(range(20)))
NOBODY = crypto.encode_address(b"\x01" * 20)
FEE, GAS = 5000, 200_000
INCLUSION_TIMEOUT_S = 20

GRPCURL = REPO / ".tools" / "grpcurl-v1.9.3" / "grpcurl"


def require_upstream_protos() -> Path:
    """The include directory `make upstream-protos` prints (it fetches once, then reuses .tools/)."""
    try:
        result = subprocess.run(["make", "-s", "--no-print-directory", "upstream-protos"], cwd=REPO,
                                capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        result = subprocess.CompletedProcess([], 1, "", str(error))
    if result.returncode != 0:
        message = f"make upstream-protos failed: {result.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return Path(result.stdout.split()[-1])


def compute_import_closure(include: Path, roots) -> list[str]:
    """`roots` and every file they import, but protobuf's own (which the protobuf package ships)."""
    seen, pending = set(), list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name.startswith(WELL_KNOWN):
            continue
        seen.add(name)
        pending += IMPORT_PATTERN.findall((include / name).read_text())
    return sorted(seen)


def run_protoc(*args) -> None:
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", *map(str, args)], check=True)


def load_descriptor_set(path: Path) -> tuple[dict, dict]:
    """({message full name: DescriptorProto}, {service full name: ServiceDescriptorProto})."""
    messages, services = {}, {}

    def walk(prefix: str, message) -> None:
        messages[f"{prefix}.{message.name}"] = message
        for nested in message.nested_type:
            walk(f"{prefix}.{message.name}", nested)

    for file in descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file:
        for message in file.message_type:
            walk(f".{file.package}", message)
        services.update({f"{file.package}.{service.name}": service for service in file.service})
    return messages, services


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict:
    include = require_upstream_protos()
    generated = tmp_path_factory.mktemp("upstream_stubs")
    files = compute_import_closure(include, SERVICE_PROTOS + ANY_PROTOS)
    run_protoc(f"-I{include}", f"--python_out={generated}", f"--grpc_python_out={generated}", *files)
    run_protoc(f"-I{include}", "--include_imports", f"--descriptor_set_out={generated / 'upstream.pb'}", *files)
    return {"include": include, "generated": generated, "descriptors": generated / "upstream.pb"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    home = tmp_path_factory.mktemp("grpc_home")
    init_funded_home(home)
    address = f"127.0.0.1:{compute_free_port()}"
    process, url = start_dev_chain(home, grpc=address)
    yield {"process": process, "rpc": client.Client(url), "grpc": address}
    stop_dev_chain(process)


@pytest.fixture(scope="module")
def sdk(upstream, chain):
    """call(method, request, metadata) through the upstream stubs: their outcome as JSON."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, str(CLIENT), chain["grpc"], str(upstream["generated"])],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                               cwd=upstream["generated"])

    def call(method: str, request: dict | None = None, metadata=()) -> dict:
        process.stdin.write(json.dumps({"method": method, "request": request or {}, "metadata": metadata}) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        assert line, f"the upstream client exited with {process.wait()}"
        return json.loads(line)

    yield call
    process.stdin.close()
    process.wait(timeout=10)


def sign_send(rpc: client.Client, amount: int) -> bytes:
    account = rpc.get_account(ALICE)
    message = bank_tx_pb2.MsgSend(from_address=ALICE, to_address=BOB, amount=[{"denom": "ujoule", "amount": str(amount)}])
    return sign_tx(crypto.derive_private_key(MNEMONIC), [message], chain_id=rpc.status().chain_id,
                   account_number=account.account_number, sequence=account.sequence, fee=FEE, gas_limit=GAS)


def wait_for_tx(sdk, txhash: str) -> dict:
    deadline = time.monotonic() + INCLUSION_TIMEOUT_S
    while time.monotonic() < deadline:
        outcome = sdk("/cosmos.tx.v1beta1.Service/GetTx", {"hash": txhash})
        if "response" in outcome:
            return outcome["response"]
        assert outcome["error"]["code"] == "NOT_FOUND", outcome
        time.sleep(0.2)
    raise AssertionError(f"tx {txhash} was not included within {INCLUSION_TIMEOUT_S} s")


def balance(sdk, address: str, metadata=()) -> dict:
    return sdk("/cosmos.bank.v1beta1.Query/Balance", {"address": address, "denom": "ujoule"}, metadata)


def test_balance_and_account(sdk):
    outcome = balance(sdk, ALICE)
    assert outcome["response"]["balance"] == {"denom": "ujoule", "amount": str(GENESIS_AMOUNT)}
    assert int(outcome["metadata"][grpc_server.HEIGHT_HEADER]) >= 1
    account = sdk("/cosmos.auth.v1beta1.Query/Account", {"address": ALICE})["response"]["account"]
    assert account["@type"] == "/cosmos.auth.v1beta1.BaseAccount"
    assert account["address"] == ALICE
    params = sdk("/cosmos.bank.v1beta1.Query/Params")
    assert "response" in params


def test_simulate_broadcast_get_and_search_a_tx(sdk, chain):
    rpc = chain["rpc"]
    before = rpc.status().latest_block_height
    tx = sign_send(rpc, 1234)
    tx_bytes = base64.b64encode(tx).decode()
    simulated = sdk("/cosmos.tx.v1beta1.Service/Simulate", {"tx_bytes": tx_bytes})["response"]
    assert 0 < int(simulated["gas_info"]["gas_used"]) <= GAS
    assert any(event["type"] == "transfer" for event in simulated["result"]["events"])

    sent = sdk("/cosmos.tx.v1beta1.Service/BroadcastTx", {"tx_bytes": tx_bytes, "mode": "BROADCAST_MODE_SYNC"})
    txhash = compute_tx_hash(tx).hex().upper()
    assert sent["response"]["tx_response"]["txhash"] == txhash
    assert sent["response"]["tx_response"].get("code", 0) == 0
    again = sdk("/cosmos.tx.v1beta1.Service/BroadcastTx", {"tx_bytes": tx_bytes, "mode": "BROADCAST_MODE_SYNC"})
    assert again["response"]["tx_response"]["code"] == 19  # the SDK's ErrTxInMempoolCache

    found = wait_for_tx(sdk, txhash)
    response = found["tx_response"]
    assert response["txhash"] == txhash and response.get("code", 0) == 0 and int(response["height"]) > before
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", response["timestamp"])
    assert response["tx"]["@type"] == "/cosmos.tx.v1beta1.Tx"
    assert found["tx"]["body"]["messages"][0] == {
        "@type": "/cosmos.bank.v1beta1.MsgSend", "from_address": ALICE, "to_address": BOB,
        "amount": [{"denom": "ujoule", "amount": "1234"}]}

    searched = sdk("/cosmos.tx.v1beta1.Service/GetTxsEvent", {
        "query": f"message.sender='{ALICE}'", "order_by": "ORDER_BY_DESC", "page": 1, "limit": 10})["response"]
    assert int(searched["total"]) >= 1
    assert searched["tx_responses"][0]["txhash"] == txhash
    assert searched["txs"][0]["body"]["messages"][0]["to_address"] == BOB

    then = balance(sdk, BOB, [[grpc_server.HEIGHT_HEADER, str(before)]])
    assert then["metadata"][grpc_server.HEIGHT_HEADER] == str(before)
    assert then["response"]["balance"].get("amount", "0") == "0"
    assert balance(sdk, BOB)["response"]["balance"]["amount"] == "1234"


def test_async_broadcast(sdk, chain):
    tx = sign_send(chain["rpc"], 1)
    sent = sdk("/cosmos.tx.v1beta1.Service/BroadcastTx",
               {"tx_bytes": base64.b64encode(tx).decode(), "mode": "BROADCAST_MODE_ASYNC"})["response"]
    assert sent["tx_response"]["txhash"] == compute_tx_hash(tx).hex().upper()
    assert wait_for_tx(sdk, sent["tx_response"]["txhash"])["tx_response"].get("code", 0) == 0
    block = sdk("/cosmos.tx.v1beta1.Service/BroadcastTx",
                {"tx_bytes": base64.b64encode(tx).decode(), "mode": "BROADCAST_MODE_BLOCK"})
    assert block["error"]["code"] == "INVALID_ARGUMENT"


def test_tendermint_and_node_services(sdk, chain):
    info = sdk("/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo")["response"]
    version = info["application_version"]
    assert (version["name"], version["app_name"], version["version"]) == ("maxwell", "maxwell", "0.1.0")
    assert version["go_version"].startswith("python 3.")
    assert {"path": "protobuf", "version": "7.36.2"} in version["build_deps"]
    assert info["default_node_info"]["network"] == chain["rpc"].status().chain_id
    assert sdk("/cosmos.base.tendermint.v1beta1.Service/GetSyncing")["response"].get("syncing", False) is False

    latest = sdk("/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock")["response"]
    height = int(latest["block"]["header"]["height"])
    assert height >= 1 and latest["sdk_block"]["header"]["proposer_address"].startswith("mxwvalcons1")
    first = sdk("/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight", {"height": 1})["response"]
    assert first["block"]["header"]["height"] == "1" and first["block_id"]["hash"]
    validators = sdk("/cosmos.base.tendermint.v1beta1.Service/GetLatestValidatorSet")["response"]
    assert [v["pub_key"]["@type"] for v in validators["validators"]] == ["/cosmos.crypto.ed25519.PubKey"]
    assert sdk("/cosmos.base.tendermint.v1beta1.Service/GetValidatorSetByHeight", {"height": 1})["response"]

    query = sdk("/cosmos.base.tendermint.v1beta1.Service/ABCIQuery", {
        "path": "/cosmos.bank.v1beta1.Query/Params", "data": ""})["response"]
    assert query.get("code", 0) == 0 and int(query["height"]) >= 1

    config = sdk("/cosmos.base.node.v1beta1.Service/Config")["response"]
    assert config["minimum_gas_price"] == "0.025ujoule"
    status = sdk("/cosmos.base.node.v1beta1.Service/Status")["response"]
    assert int(status["height"]) >= height and status["app_hash"] and status["timestamp"]


def test_errors_are_the_sdks_status_codes(sdk):
    assert balance(sdk, "mxw1notanaddress")["error"]["code"] == "INVALID_ARGUMENT"
    missing = sdk("/cosmos.auth.v1beta1.Query/Account", {"address": NOBODY})["error"]
    assert missing["code"] == "NOT_FOUND" and NOBODY in missing["details"]
    assert sdk("/cosmos.tx.v1beta1.Service/GetTx", {"hash": "AB" * 32})["error"]["code"] == "NOT_FOUND"
    assert sdk("/cosmos.tx.v1beta1.Service/GetTxsEvent", {"query": ""})["error"]["code"] == "INVALID_ARGUMENT"
    future = balance(sdk, ALICE, [[grpc_server.HEIGHT_HEADER, str(10**12)]])["error"]
    assert future["code"] == "INVALID_ARGUMENT" and "not committed" in future["details"]
    assert balance(sdk, ALICE, [[grpc_server.HEIGHT_HEADER, "soon"]])["error"]["code"] == "INVALID_ARGUMENT"
    unserved = sdk("/cosmos.bank.v1beta1.Query/SpendableBalances", {"address": ALICE})["error"]
    assert unserved["code"] == "UNIMPLEMENTED"


def test_reflection_lists_every_service(chain):
    with grpc.insecure_channel(chain["grpc"]) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert services == {*grpc_server.SERVICE_NAMES, "grpc.reflection.v1alpha.ServerReflection"}
        balance_method = database.FindFileContainingSymbol("cosmos.bank.v1beta1.Query")
        assert any(s.name == "Query" and [m.name for m in s.method][0] == "Balance" for s in balance_method.service)


def test_grpcurl_lists_the_services_and_calls_one(chain):
    """grpcurl (built by the Makefile from its Go module) knows our services only from reflection."""
    assert GRPCURL.is_file(), f"{GRPCURL} is missing: run `make tools`"
    listed = subprocess.run([str(GRPCURL), "-plaintext", chain["grpc"], "list"], capture_output=True, text=True,
                            timeout=30, check=True).stdout.split()
    assert set(grpc_server.SERVICE_NAMES) <= set(listed)
    answer = subprocess.run([str(GRPCURL), "-plaintext", "-d", json.dumps({"denom": "ujoule"}), chain["grpc"],
                             "cosmos.bank.v1beta1.Query/SupplyOf"], capture_output=True, text=True, timeout=30,
                            check=True).stdout
    assert json.loads(answer)["amount"]["denom"] == "ujoule" and int(json.loads(answer)["amount"]["amount"]) > 0


def test_maxwells_protos_agree_with_the_sdks(upstream, tmp_path):
    """Every field both define has the same number, name and type; every method the same types."""
    ours = tmp_path / "ours.pb"
    protos = sorted(str(path.relative_to(REPO)) for path in (REPO / "chain" / "proto").rglob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO}", "--include_imports",
                    f"--descriptor_set_out={ours}", *protos], check=True, cwd=REPO)
    their_messages, their_services = load_descriptor_set(upstream["descriptors"])
    our_messages, our_services = load_descriptor_set(ours)
    shared = [name for name in our_messages if name in their_messages]
    assert len(shared) > 100
    for name in shared:
        theirs = {field.number: field for field in their_messages[name].field}
        for field in our_messages[name].field:
            if field.number in theirs:
                expected = theirs[field.number]
                assert (field.name, field.type, field.type_name, field.label) == (
                    expected.name, expected.type, expected.type_name, expected.label), f"{name}.{field.name}"
    for name, service in our_services.items():
        if name.startswith("cosmos."):
            theirs = {method.name: method for method in their_services[name].method}
            for method in service.method:
                assert (method.input_type, method.output_type) == (
                    theirs[method.name].input_type, theirs[method.name].output_type), f"{name}/{method.name}"
