"""The REST gateway of a real `maxwell dev`: every route against the gRPC answer, the SDK's JSON and error
shapes, CORS, chain-info, and a Keplr-like send in Node (cosmjs' wallet, the REST gateway alone).

Hostile clients (slow, oversized, connection floods) are in test_rest_hostile.py, schemathesis in
test_rest_fuzz.py.
"""

import base64
import json
import re
import shutil
import math
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format

from chain import app as registry
from chain import crypto
from chain.proto.cosmos.auth.v1beta1 import query_pb2 as auth_pb2
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_pb2
from chain.proto.cosmos.base.node.v1beta1 import query_pb2 as node_pb2
from chain.proto.cosmos.base.query.v1beta1 import pagination_pb2
from chain.proto.cosmos.base.tendermint.v1beta1 import query_pb2 as cmt_pb2
from chain.proto.cosmos.slashing.v1beta1 import query_pb2 as slashing_pb2
from chain.proto.cosmos.staking.v1beta1 import query_pb2 as staking_pb2
from chain.proto.cosmos.tx.v1beta1 import service_pb2
from chain.proto.maxwell.inference.v1 import query_pb2 as inference_pb2
from chain.proto.maxwell.market.v1 import query_pb2 as market_pb2
from chain.proto.ibc.applications.interchain_accounts.controller.v1 import query_pb2 as controller_q
from chain.proto.ibc.applications.interchain_accounts.host.v1 import query_pb2 as host_q
from chain.proto.ibc.applications.transfer.v1 import query_pb2 as transfer_q
from chain.proto.ibc.core.channel.v1 import query_pb2 as channel_q
from chain.proto.ibc.core.client.v1 import query_pb2 as client_q
from chain.proto.ibc.core.connection.v1 import query_pb2 as connection_q
from node import grpc_server, keyring, rest
from tests.helpers import (
    ALICE, GENESIS_AMOUNT, MAXWELL, MNEMONIC, REPO, assert_one_line_error, compute_free_port, init_funded_home, invoke,
    start_dev_chain, stop_dev_chain, wait_for,
)

COSMJS_DIR = Path(__file__).resolve().parent / "cosmjs"
UPSTREAM_PROTOS = REPO / ".tools" / "cosmos-sdk-protos-v0.50.15"
ALLOWED_ORIGIN = "https://wallet.example"
NOBODY = crypto.encode_address(b"\x01" * 20)
VALOPER = crypto.encode_address(b"\x01" * 20, crypto.BECH32_PREFIX + "valoper")
VALCONS = crypto.encode_address(b"\x02" * 20, crypto.BECH32_PREFIX + "valcons")
HTTP_RULE = re.compile(r'rpc\s+(\w+)\s*\(\s*[\w.]+\s*\)\s*returns\s*\(\s*[\w.]+\s*\)\s*\{(.*?)\n  \}', re.DOTALL)
SEND_AMOUNT = 4321


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    home = tmp_path_factory.mktemp("rest")
    init_funded_home(home, chain_id="maxwell-rest-1")
    grpc_address, rest_address = f"127.0.0.1:{compute_free_port()}", f"127.0.0.1:{compute_free_port()}"
    process, url = start_dev_chain(home, "300ms", grpc_address, rest_address, "--rest-cors", ALLOWED_ORIGIN)
    channel = grpc.insecure_channel(grpc_address)
    yield {"home": home, "rpc": url, "rest": f"http://{rest_address}", "grpc": grpc_address, "channel": channel}
    channel.close()
    stop_dev_chain(process)


def get(node, path: str, headers=None, method: str = "GET", body: bytes | None = None):
    """(HTTP status, JSON body, headers) of a REST call."""
    request = urllib.request.Request(node["rest"] + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers


def post(node, path: str, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return get(node, path, {"Content-Type": "application/json", **(headers or {})}, "POST", data)


def call_grpc(node, path: str, request, height: int):
    """(response message or None, (status, details) or None) of the same query over gRPC."""
    method = rest.get_method_descriptor(path)
    response_class = rest.message_factory.GetMessageClass(method.output_type)
    try:
        raw, _ = node["channel"].unary_unary(path).with_call(
            request.SerializeToString(), metadata=((grpc_server.HEIGHT_HEADER, str(height)),), timeout=30)
    except grpc.RpcError as error:
        return None, (error.code(), error.details())
    return response_class.FromString(raw), None


def assert_sdk_json(shown, expected, where="$"):
    """`shown` is `expected` (MessageToDict with every field) as gogo's jsonpb writes it: a null where
    MessageToDict leaves an unset message out or writes empty bytes as ""."""
    if isinstance(expected, dict):
        assert isinstance(shown, dict), where
        assert set(expected) <= set(shown), (where, set(expected) - set(shown))
        for key, value in shown.items():
            if value is None:
                assert expected.get(key) in (None, ""), (f"{where}.{key}", expected.get(key))
            elif key not in expected:  # an unset non-nullable message: its zero value
                assert is_zero_json(value), (f"{where}.{key}", value)
            else:
                assert key in expected, f"{where}.{key}"
                assert_sdk_json(value, expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(shown, list) and len(shown) == len(expected), where
        for index, (a, b) in enumerate(zip(shown, expected)):
            assert_sdk_json(a, b, f"{where}[{index}]")
    else:
        assert shown == expected, (where, shown, expected)


def is_zero_json(value) -> bool:
    if isinstance(value, dict):
        return all(is_zero_json(v) for k, v in value.items())
    return value in (None, "", "0", 0, False, [], "0s", "0001-01-01T00:00:00Z") or (
        isinstance(value, str) and value.endswith("_UNSPECIFIED"))


def compute_cases(height: int, tx_hash: str) -> list[tuple[str, str, object]]:
    """(REST path and query, gRPC method, request) for every GET route, at least once."""
    page = pagination_pb2.PageRequest(limit=1, count_total=True)
    query = f"tx.hash='{tx_hash}'"
    return [
        (f"/cosmos/auth/v1beta1/accounts/{ALICE}", "/cosmos.auth.v1beta1.Query/Account",
         auth_pb2.QueryAccountRequest(address=ALICE)),
        (f"/cosmos/auth/v1beta1/accounts/{NOBODY}", "/cosmos.auth.v1beta1.Query/Account",
         auth_pb2.QueryAccountRequest(address=NOBODY)),
        ("/cosmos/auth/v1beta1/params", "/cosmos.auth.v1beta1.Query/Params", auth_pb2.QueryParamsRequest()),
        (f"/cosmos/bank/v1beta1/balances/{ALICE}/by_denom?denom=ujoule", "/cosmos.bank.v1beta1.Query/Balance",
         bank_pb2.QueryBalanceRequest(address=ALICE, denom="ujoule")),
        (f"/cosmos/bank/v1beta1/balances/{ALICE}/by_denom?denom=nothing", "/cosmos.bank.v1beta1.Query/Balance",
         bank_pb2.QueryBalanceRequest(address=ALICE, denom="nothing")),
        (f"/cosmos/bank/v1beta1/balances/{ALICE}?pagination.limit=1&pagination.countTotal=true",
         "/cosmos.bank.v1beta1.Query/AllBalances", bank_pb2.QueryAllBalancesRequest(address=ALICE, pagination=page)),
        ("/cosmos/bank/v1beta1/supply", "/cosmos.bank.v1beta1.Query/TotalSupply", bank_pb2.QueryTotalSupplyRequest()),
        ("/cosmos/bank/v1beta1/supply/by_denom?denom=ujoule", "/cosmos.bank.v1beta1.Query/SupplyOf",
         bank_pb2.QuerySupplyOfRequest(denom="ujoule")),
        ("/cosmos/bank/v1beta1/params", "/cosmos.bank.v1beta1.Query/Params", bank_pb2.QueryParamsRequest()),
        ("/cosmos/bank/v1beta1/denoms_metadata/ujoule", "/cosmos.bank.v1beta1.Query/DenomMetadata",
         bank_pb2.QueryDenomMetadataRequest(denom="ujoule")),
        ("/cosmos/bank/v1beta1/denoms_metadata/nothing", "/cosmos.bank.v1beta1.Query/DenomMetadata",
         bank_pb2.QueryDenomMetadataRequest(denom="nothing")),
        ("/cosmos/staking/v1beta1/validators?status=BOND_STATUS_BONDED", "/cosmos.staking.v1beta1.Query/Validators",
         staking_pb2.QueryValidatorsRequest(status="BOND_STATUS_BONDED")),
        (f"/cosmos/staking/v1beta1/validators/{VALOPER}", "/cosmos.staking.v1beta1.Query/Validator",
         staking_pb2.QueryValidatorRequest(validator_addr=VALOPER)),
        (f"/cosmos/staking/v1beta1/validators/{VALOPER}/delegations/{ALICE}",
         "/cosmos.staking.v1beta1.Query/Delegation",
         staking_pb2.QueryDelegationRequest(validator_addr=VALOPER, delegator_addr=ALICE)),
        (f"/cosmos/staking/v1beta1/validators/{VALOPER}/delegations/{ALICE}/unbonding_delegation",
         "/cosmos.staking.v1beta1.Query/UnbondingDelegation",
         staking_pb2.QueryUnbondingDelegationRequest(validator_addr=VALOPER, delegator_addr=ALICE)),
        (f"/cosmos/staking/v1beta1/delegations/{ALICE}", "/cosmos.staking.v1beta1.Query/DelegatorDelegations",
         staking_pb2.QueryDelegatorDelegationsRequest(delegator_addr=ALICE)),
        (f"/cosmos/staking/v1beta1/historical_info/{height}", "/cosmos.staking.v1beta1.Query/HistoricalInfo",
         staking_pb2.QueryHistoricalInfoRequest(height=height)),
        ("/cosmos/staking/v1beta1/pool", "/cosmos.staking.v1beta1.Query/Pool", staking_pb2.QueryPoolRequest()),
        ("/cosmos/staking/v1beta1/params", "/cosmos.staking.v1beta1.Query/Params", staking_pb2.QueryParamsRequest()),
        ("/cosmos/slashing/v1beta1/params", "/cosmos.slashing.v1beta1.Query/Params", slashing_pb2.QueryParamsRequest()),
        (f"/cosmos/slashing/v1beta1/signing_infos/{VALCONS}", "/cosmos.slashing.v1beta1.Query/SigningInfo",
         slashing_pb2.QuerySigningInfoRequest(cons_address=VALCONS)),
        ("/cosmos/slashing/v1beta1/signing_infos?pagination.limit=5", "/cosmos.slashing.v1beta1.Query/SigningInfos",
         slashing_pb2.QuerySigningInfosRequest(pagination={"limit": 5})),
        (f"/cosmos/tx/v1beta1/txs/{tx_hash}", "/cosmos.tx.v1beta1.Service/GetTx", service_pb2.GetTxRequest(hash=tx_hash)),
        (f"/cosmos/tx/v1beta1/txs/{'AB' * 32}", "/cosmos.tx.v1beta1.Service/GetTx",
         service_pb2.GetTxRequest(hash="AB" * 32)),
        (f"/cosmos/tx/v1beta1/txs?query={urllib.parse.quote(query)}&order_by=ORDER_BY_DESC&limit=5",
         "/cosmos.tx.v1beta1.Service/GetTxsEvent",
         service_pb2.GetTxsEventRequest(query=query, order_by=service_pb2.ORDER_BY_DESC, limit=5)),
        ("/cosmos/tx/v1beta1/txs?events=tx.height%3E0&events=tx.height%3C3&order_by=2",
         "/cosmos.tx.v1beta1.Service/GetTxsEvent",
         service_pb2.GetTxsEventRequest(events=["tx.height>0", "tx.height<3"], order_by=service_pb2.ORDER_BY_DESC)),
        (f"/cosmos/tx/v1beta1/txs/block/{height}", "/cosmos.tx.v1beta1.Service/GetBlockWithTxs",
         service_pb2.GetBlockWithTxsRequest(height=height)),
        ("/cosmos/base/tendermint/v1beta1/node_info", "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo",
         cmt_pb2.GetNodeInfoRequest()),
        ("/cosmos/base/tendermint/v1beta1/syncing", "/cosmos.base.tendermint.v1beta1.Service/GetSyncing",
         cmt_pb2.GetSyncingRequest()),
        ("/cosmos/base/tendermint/v1beta1/blocks/latest", "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock",
         cmt_pb2.GetLatestBlockRequest()),
        (f"/cosmos/base/tendermint/v1beta1/blocks/{height}", "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight",
         cmt_pb2.GetBlockByHeightRequest(height=height)),
        ("/cosmos/base/tendermint/v1beta1/blocks/999999999",
         "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight", cmt_pb2.GetBlockByHeightRequest(height=999999999)),
        ("/cosmos/base/tendermint/v1beta1/validatorsets/latest",
         "/cosmos.base.tendermint.v1beta1.Service/GetLatestValidatorSet", cmt_pb2.GetLatestValidatorSetRequest()),
        (f"/cosmos/base/tendermint/v1beta1/validatorsets/{height}",
         "/cosmos.base.tendermint.v1beta1.Service/GetValidatorSetByHeight",
         cmt_pb2.GetValidatorSetByHeightRequest(height=height)),
        (f"/cosmos/base/tendermint/v1beta1/abci_query?path=/cosmos.bank.v1beta1.Query/Balance&data="
         f"{urllib.parse.quote(base64.b64encode(bank_pb2.QueryBalanceRequest(address=ALICE, denom='ujoule').SerializeToString()).decode())}",
         "/cosmos.base.tendermint.v1beta1.Service/ABCIQuery",
         cmt_pb2.ABCIQueryRequest(path="/cosmos.bank.v1beta1.Query/Balance",
                                  data=bank_pb2.QueryBalanceRequest(address=ALICE, denom="ujoule").SerializeToString())),
        ("/cosmos/base/node/v1beta1/config", "/cosmos.base.node.v1beta1.Service/Config", node_pb2.ConfigRequest()),
        ("/cosmos/base/node/v1beta1/status", "/cosmos.base.node.v1beta1.Service/Status", node_pb2.StatusRequest()),
        ("/maxwell/market/v1/params", "/maxwell.market.v1.Query/Params", market_pb2.QueryParamsRequest()),
        ("/maxwell/market/v1/providers?pagination.limit=3", "/maxwell.market.v1.Query/Providers",
         market_pb2.QueryProvidersRequest(pagination={"limit": 3})),
        (f"/maxwell/market/v1/providers/{ALICE}", "/maxwell.market.v1.Query/Provider",
         market_pb2.QueryProviderRequest(address=ALICE)),
        ("/maxwell/market/v1/book/digits", "/maxwell.market.v1.Query/Book", market_pb2.QueryBookRequest(work="digits")),
        ("/maxwell/market/v1/book/nothing", "/maxwell.market.v1.Query/Book", market_pb2.QueryBookRequest(work="nothing")),
        ("/maxwell/market/v1/clearing/digits", "/maxwell.market.v1.Query/Clearing",
         market_pb2.QueryClearingRequest(work="digits")),
        ("/maxwell/market/v1/processes/1", "/maxwell.market.v1.Query/Process", market_pb2.QueryProcessRequest(id=1)),
        ("/maxwell/market/v1/assignments/1/0", "/maxwell.market.v1.Query/Assignment",
         market_pb2.QueryAssignmentRequest(task_ref="1/0")),
        ("/maxwell/inference/v1/models", "/maxwell.inference.v1.Query/Models", inference_pb2.QueryModelsRequest()),
        ("/maxwell/inference/v1/models/digits", "/maxwell.inference.v1.Query/Model",
         inference_pb2.QueryModelRequest(name="digits")),
        ("/maxwell/inference/v1/requests/1", "/maxwell.inference.v1.Query/Request",
         inference_pb2.QueryRequestRequest(request_id=1)),
        ("/maxwell/inference/v1/results/1", "/maxwell.inference.v1.Query/Result",
         inference_pb2.QueryResultRequest(request_id=1)),
        *compute_ibc_cases(),
    ]


def compute_ibc_cases() -> list[tuple[str, str, object]]:
    """The IBC routes on a chain with no client yet: ibc-go's not-found errors, its params and empty lists."""
    client, connection, channel = "07-tendermint-0", "connection-0", "channel-0"
    ids = {"port_id": "transfer", "channel_id": channel}
    at = {"revision_number": 1, "revision_height": 5}
    on_channel = f"/ibc/core/channel/v1/channels/{channel}/ports/transfer"
    rows = [
        (f"/ibc/core/client/v1/client_states/{client}", client_q.QueryClientStateRequest(client_id=client)),
        ("/ibc/core/client/v1/client_states", client_q.QueryClientStatesRequest()),
        (f"/ibc/core/client/v1/consensus_states/{client}/revision/1/height/5",
         client_q.QueryConsensusStateRequest(client_id=client, **at)),
        (f"/ibc/core/client/v1/consensus_states/{client}", client_q.QueryConsensusStatesRequest(client_id=client)),
        (f"/ibc/core/client/v1/consensus_states/{client}/heights",
         client_q.QueryConsensusStateHeightsRequest(client_id=client)),
        (f"/ibc/core/client/v1/client_status/{client}", client_q.QueryClientStatusRequest(client_id=client)),
        ("/ibc/core/client/v1/params", client_q.QueryClientParamsRequest()),
        (f"/ibc/core/connection/v1/connections/{connection}",
         connection_q.QueryConnectionRequest(connection_id=connection)),
        ("/ibc/core/connection/v1/connections", connection_q.QueryConnectionsRequest()),
        (f"/ibc/core/connection/v1/client_connections/{client}",
         connection_q.QueryClientConnectionsRequest(client_id=client)),
        (f"/ibc/core/connection/v1/connections/{connection}/client_state",
         connection_q.QueryConnectionClientStateRequest(connection_id=connection)),
        (f"/ibc/core/connection/v1/connections/{connection}/consensus_state/revision/1/height/5",
         connection_q.QueryConnectionConsensusStateRequest(connection_id=connection, **at)),
        ("/ibc/core/connection/v1/params", connection_q.QueryConnectionParamsRequest()),
        (on_channel, channel_q.QueryChannelRequest(**ids)),
        ("/ibc/core/channel/v1/channels", channel_q.QueryChannelsRequest()),
        (f"/ibc/core/channel/v1/connections/{connection}/channels",
         channel_q.QueryConnectionChannelsRequest(connection=connection)),
        (f"{on_channel}/client_state", channel_q.QueryChannelClientStateRequest(**ids)),
        (f"{on_channel}/consensus_state/revision/1/height/5", channel_q.QueryChannelConsensusStateRequest(**ids, **at)),
        (f"{on_channel}/packet_commitments/1", channel_q.QueryPacketCommitmentRequest(**ids, sequence=1)),
        (f"{on_channel}/packet_commitments", channel_q.QueryPacketCommitmentsRequest(**ids)),
        (f"{on_channel}/packet_receipts/1", channel_q.QueryPacketReceiptRequest(**ids, sequence=1)),
        (f"{on_channel}/packet_acks/1", channel_q.QueryPacketAcknowledgementRequest(**ids, sequence=1)),
        (f"{on_channel}/packet_acknowledgements", channel_q.QueryPacketAcknowledgementsRequest(**ids)),
        (f"{on_channel}/packet_commitments/1,2/unreceived_packets",
         channel_q.QueryUnreceivedPacketsRequest(**ids, packet_commitment_sequences=[1, 2])),
        (f"{on_channel}/packet_commitments/1/unreceived_acks",
         channel_q.QueryUnreceivedAcksRequest(**ids, packet_ack_sequences=[1])),
        (f"{on_channel}/next_sequence", channel_q.QueryNextSequenceReceiveRequest(**ids)),
        (f"{on_channel}/next_sequence_send", channel_q.QueryNextSequenceSendRequest(**ids)),
        ("/ibc/core/channel/v1/params", channel_q.QueryChannelParamsRequest()),
        ("/ibc/apps/transfer/v1/denom_traces", transfer_q.QueryDenomTracesRequest()),
        (f"/ibc/apps/transfer/v1/denom_traces/ibc/{'AB' * 32}", transfer_q.QueryDenomTraceRequest(hash=f"ibc/{'AB' * 32}")),
        ("/ibc/apps/transfer/v1/params", transfer_q.QueryParamsRequest()),
        ("/ibc/apps/transfer/v1/denom_hashes/transfer/channel-0/ujoule",
         transfer_q.QueryDenomHashRequest(trace="transfer/channel-0/ujoule")),
        (f"/ibc/apps/transfer/v1/channels/{channel}/ports/transfer/escrow_address",
         transfer_q.QueryEscrowAddressRequest(**ids)),
        ("/ibc/apps/transfer/v1/denoms/ujoule/total_escrow", transfer_q.QueryTotalEscrowForDenomRequest(denom="ujoule")),
        (f"/ibc/apps/interchain_accounts/controller/v1/owners/{ALICE}/connections/{connection}",
         controller_q.QueryInterchainAccountRequest(owner=ALICE, connection_id=connection)),
        ("/ibc/apps/interchain_accounts/controller/v1/params", controller_q.QueryParamsRequest()),
        ("/ibc/apps/interchain_accounts/host/v1/params", host_q.QueryParamsRequest()),
    ]
    return [(path, registry.QUERY_PATHS[type(request)], request) for path, request in rows]


def compare(node, path: str, method: str, request, height: int) -> tuple[int, dict]:
    """The REST answer at `height` is the gRPC one, in the SDK's JSON or its error shape."""
    status, shown, headers = get(node, path, {grpc_server.HEIGHT_HEADER: str(height)})
    answer, error = call_grpc(node, method, request, height)
    if error is not None:
        code, details = error
        assert status == rest.HTTP_STATUS[code] and shown == {"code": code.value[0], "message": details,
                                                              "details": []}, (path, status, shown)
        return status, shown
    assert status == 200, (path, shown)
    assert headers[grpc_server.HEIGHT_HEADER] == headers[rest.METADATA_HEIGHT_HEADER]
    assert_sdk_json(shown, json_format.MessageToDict(answer, always_print_fields_with_no_presence=True,
                                                     preserving_proto_field_name=True), path)
    assert json_format.ParseDict(shown, type(answer)()) == answer, path
    return status, shown


def send_tx(node, amount: int = 10) -> tuple[str, bytes]:
    bob = keyring.get_key(node["home"], "file", "bob").address
    result = invoke("tx", "send", "alice", bob, f"{amount}ujoule", "--keyring-backend", "test", "--node", node["rpc"],
                    "--home", node["home"], "-o", "json")
    assert result.exit_code == 0, result.stderr
    tx_hash = json.loads(result.stdout)["hash"]
    found = wait_for(lambda: get(node, f"/cosmos/tx/v1beta1/txs/{tx_hash}")[0] == 200, timeout=20)
    assert found
    _, shown, _ = get(node, f"/cosmos/tx/v1beta1/txs/{tx_hash}")
    return tx_hash, base64.b64decode(post(node, "/cosmos/tx/v1beta1/encode", {"tx": shown["tx"]})[1]["tx_bytes"])


def test_every_query_and_node_method_has_its_route():
    routed = [grpc_path for _, _, grpc_path in rest.ROUTES]
    assert len(routed) == len(set(routed))
    assert set(routed) == {*registry.QUERIES, registry.SIMULATE_PATH, *grpc_server.NODE_METHODS}
    for route in rest.compute_routes():
        assert set(route.path_fields) <= set(route.request_class.DESCRIPTOR.fields_by_name), route.template


def test_cosmos_routes_are_the_sdk_google_api_http_annotations():
    """The table says what the SDK's .proto files say (fetched by `make upstream-protos` into .tools/)."""
    if not UPSTREAM_PROTOS.is_dir():
        pytest.skip(f"no {UPSTREAM_PROTOS}: run make upstream-protos")
    annotated = {}
    for proto in UPSTREAM_PROTOS.glob("cosmos/**/*.proto"):
        text = re.sub(r"//[^\n]*", "", proto.read_text())
        package = re.search(r"^package ([\w.]+);", text, re.MULTILINE)
        service = re.search(r"^service (\w+)", text, re.MULTILINE)
        for method, options in HTTP_RULE.findall(text):
            rule = re.search(r'(get|post)\s*[:=]\s*((?:"[^"]*"\s*)+)', options)
            if rule:
                template = "".join(re.findall(r'"([^"]*)"', rule.group(2)))
                annotated[f"/{package.group(1)}.{service.group(1)}/{method}"] = (rule.group(1).upper(), template)
    cosmos = [(method, template, path) for method, template, path in rest.ROUTES if path.startswith("/cosmos.")]
    assert len(cosmos) > 30
    for method, template, path in cosmos:
        assert annotated[path] == (method, template), path
    for method, template, path in rest.ROUTES:
        if path.startswith("/maxwell."):
            assert template.startswith(f"/maxwell/{path.split('.')[1]}/v1/"), template


def compute_upstream_non_nullable(messages: set[str]) -> dict[str, tuple[str, ...]]:
    """NON_NULLABLE as the SDK's .proto files say it, for `messages`: singular message fields with
    (gogoproto.nullable) = false."""
    found = {}
    for proto in UPSTREAM_PROTOS.rglob("*.proto"):
        text = re.sub(r"//[^\n]*", "", proto.read_text())
        package = re.search(r"^package ([\w.]+);", text, re.MULTILINE)
        for message in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.MULTILINE | re.DOTALL):
            name = f"{package.group(1)}.{message.group(1)}"
            if name not in messages:
                continue
            fields = descriptor_pool.Default().FindMessageTypeByName(name).fields_by_name
            for field in re.finditer(r"^\s+(repeated\s+)?[\w.]+\s+(\w+)\s*=\s*\d+\s*\[([^\]]*)\]",
                                     message.group(2), re.MULTILINE):
                ours = fields.get(field.group(2))
                if (not field.group(1) and re.search(r"nullable\)\s*=\s*false", field.group(3)) and ours is not None
                        and ours.message_type is not None):
                    found[name] = found.get(name, ()) + (field.group(2),)
    return found


def compute_answered_messages() -> set[str]:
    """Every message a route can answer with, through fields and the Anys the chain packs."""
    seen, pending = set(), [route.response_class.DESCRIPTOR for route in rest.compute_routes()]
    pending += [descriptor_pool.Default().FindMessageTypeByName(name) for name in (
        "cosmos.auth.v1beta1.BaseAccount", "cosmos.crypto.secp256k1.PubKey", "cosmos.crypto.ed25519.PubKey")]
    while pending:
        message = pending.pop()
        if message.full_name not in seen:
            seen.add(message.full_name)
            pending += [field.message_type for field in message.fields if field.message_type is not None]
    return seen


def test_non_nullable_fields_are_the_sdk_protos():
    if not UPSTREAM_PROTOS.is_dir():
        pytest.skip(f"no {UPSTREAM_PROTOS}: run make upstream-protos")
    upstream = compute_upstream_non_nullable(compute_answered_messages())
    assert {name: set(fields) for name, fields in rest.NON_NULLABLE.items()} == \
        {name: set(fields) for name, fields in upstream.items()}


def test_unset_non_nullable_fields_show_their_zero_value():
    shown = rest.compute_json(staking_pb2.QueryValidatorResponse(validator={"operator_address": VALOPER}))
    validator = shown["validator"]
    assert validator["unbonding_time"] == "0001-01-01T00:00:00Z" and validator["consensus_pubkey"] is None
    assert validator["description"] == {"moniker": "", "identity": "", "website": "", "security_contact": "",
                                        "details": ""}
    assert validator["commission"]["commission_rates"] == {"rate": "", "max_rate": "", "max_change_rate": ""}
    assert validator["status"] == "BOND_STATUS_UNSPECIFIED" and validator["jailed"] is False
    assert rest.compute_json(staking_pb2.QueryValidatorResponse())["validator"]["operator_address"] == ""
    assert rest.compute_json(bank_pb2.QueryBalanceResponse()) == {"balance": None}


def test_every_route_answers_what_grpc_answers_in_the_sdk_json(node):
    tx_hash, _ = send_tx(node)
    height = int(get(node, "/cosmos/base/tendermint/v1beta1/blocks/latest")[1]["block"]["header"]["height"])
    routed = set()
    for path, method, request in compute_cases(height, tx_hash):
        for attempt in range(3):  # the chain may move between the two calls ("latest"; listings, which are
            try:                # answered at the latest height only)
                compare(node, path, method, request, height)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        routed.add(method)
    assert routed == {path for verb, _, path in rest.ROUTES if verb == "GET"}


def test_post_routes_answer_what_grpc_answers(node):
    tx_hash, tx_bytes = send_tx(node)
    encoded = base64.b64encode(tx_bytes).decode()
    status, decoded, _ = post(node, "/cosmos/tx/v1beta1/decode", {"tx_bytes": encoded})
    answer, _ = call_grpc(node, "/cosmos.tx.v1beta1.Service/TxDecode", service_pb2.TxDecodeRequest(tx_bytes=tx_bytes), 0)
    assert status == 200 and json_format.ParseDict(decoded, type(answer)()) == answer
    assert decoded["tx"]["body"]["messages"][0]["@type"] == "/cosmos.bank.v1beta1.MsgSend"
    assert decoded["tx"]["auth_info"]["signer_infos"][0]["mode_info"]["single"]["mode"] == "SIGN_MODE_DIRECT"
    assert decoded["tx"]["body"]["timeout_height"] == "0"  # uint64 as a string, defaults emitted
    assert post(node, "/cosmos/tx/v1beta1/encode", decoded)[1] == {"tx_bytes": encoded}

    # The tx is spent, so its simulation fails as over gRPC; the gas of a fresh one is simulated in the cosmjs flow.
    status, shown, _ = post(node, "/cosmos/tx/v1beta1/simulate", {"tx_bytes": encoded})
    _, error = call_grpc(node, registry.SIMULATE_PATH, service_pb2.SimulateRequest(tx_bytes=tx_bytes), 0)
    assert (status, shown) == (rest.HTTP_STATUS[error[0]], {"code": error[0].value[0], "message": error[1], "details": []})
    status, shown, _ = post(node, "/cosmos/tx/v1beta1/txs", {"tx_bytes": encoded, "mode": "BROADCAST_MODE_SYNC"})
    assert status == 200 and shown["tx_response"]["txhash"] == tx_hash and shown["tx_response"]["code"] == 19
    status, shown, _ = post(node, "/cosmos/tx/v1beta1/txs", {"tx_bytes": encoded, "mode": 2})
    assert status == 200 and shown["tx_response"]["code"] == 19  # an enum by number too, as jsonpb reads it


def test_sdk_json_renderings(node):
    _, account, headers = get(node, f"/cosmos/auth/v1beta1/accounts/{NOBODY}")
    assert account["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    _, shown, headers = get(node, f"/cosmos/bank/v1beta1/balances/{ALICE}")
    assert shown["pagination"] == {"next_key": None, "total": "1"}  # int64 as a string, empty bytes null
    assert int(headers[grpc_server.HEIGHT_HEADER]) >= 1
    _, shown, _ = get(node, "/cosmos/staking/v1beta1/validators")
    assert shown["validators"] == []  # repeated fields emitted empty
    _, shown, _ = get(node, "/cosmos/base/tendermint/v1beta1/blocks/1")
    assert shown["block"]["last_commit"]["signatures"] == [] and shown["block"]["header"]["last_block_id"]["hash"] is None
    assert shown["sdk_block"]["header"]["proposer_address"].startswith(crypto.BECH32_PREFIX + "valcons1")
    _, shown, _ = get(node, "/cosmos/base/tendermint/v1beta1/blocks/2")
    assert shown["block"]["last_commit"]["signatures"][0]["block_id_flag"] == "BLOCK_ID_FLAG_COMMIT"
    _, shown, _ = get(node, "/cosmos/base/tendermint/v1beta1/validatorsets/latest")
    assert shown["validators"][0]["pub_key"]["@type"] == "/cosmos.crypto.ed25519.PubKey"


def test_height_header(node):
    path = f"/cosmos/bank/v1beta1/balances/{ALICE}/by_denom?denom=ujoule"
    _, shown, headers = get(node, path, {grpc_server.HEIGHT_HEADER: "1"})
    assert headers[grpc_server.HEIGHT_HEADER] == "1" and headers[rest.METADATA_HEIGHT_HEADER] == "1"
    assert shown == {"balance": {"denom": "ujoule", "amount": str(GENESIS_AMOUNT)}}  # before any test's tx
    for header in ("-1", "abc", "99999999999999999999", str(2**63)):
        status, shown, _ = get(node, path, {grpc_server.HEIGHT_HEADER: header})
        assert status == 400 and shown["code"] == 3 and "height" in shown["message"], header
    status, shown, _ = get(node, path, {grpc_server.HEIGHT_HEADER: "99999999"})
    assert status == 400 and shown["code"] == 3, shown


BAD_REQUESTS = [
    ("GET", "/cosmos/bank/v1beta1/balances/mxw1nothing", None, 400, 3, "invalid"),
    ("GET", f"/cosmos/bank/v1beta1/balances/{ALICE}?pagination.limit=-1", None, 400, 3,
     'strconv.ParseUint: parsing "-1": invalid syntax'),
    ("GET", f"/cosmos/bank/v1beta1/balances/{ALICE}?pagination.key=%%%", None, 400, 3, "pagination.key"),
    ("GET", f"/cosmos/bank/v1beta1/balances/{ALICE}?pagination=1", None, 400, 3, "not supported in query parameters"),
    ("GET", "/cosmos/base/tendermint/v1beta1/blocks/x1", None, 400, 3, "type mismatch, parameter: height"),
    ("GET", "/cosmos/base/tendermint/v1beta1/blocks/99999999999999999999", None, 400, 3, "value out of range"),
    ("GET", "/cosmos/base/tendermint/v1beta1/blocks/0", None, 400, 3, "height must be greater than 0"),
    ("GET", "/cosmos/tx/v1beta1/txs", None, 400, 3, "query cannot be empty"),
    ("GET", "/cosmos/tx/v1beta1/txs?query=tx.height%3E&order_by=ORDER_BY_ASC", None, 400, 3, ""),
    ("GET", "/cosmos/tx/v1beta1/txs?query=tx.height%3E0&order_by=SIDEWAYS", None, 400, 3, "SIDEWAYS is not valid"),
    ("GET", "/cosmos/tx/v1beta1/txs/nothex", None, 400, 3, "not hex"),
    ("GET", "/maxwell/market/v1/book/0", None, 400, 3, "unknown work '0'"),
    ("POST", "/cosmos/tx/v1beta1/txs", b"{not json", 400, 3, "the body is not JSON"),
    ("POST", "/cosmos/tx/v1beta1/txs", b'{"tx_bytes": "AAAA", "nope": 1}', 400, 3, "nope"),
    ("POST", "/cosmos/tx/v1beta1/txs", b'{"tx_bytes": "not base64!"}', 400, 3, "the body is no cosmos.tx.v1beta1"),
    ("POST", "/cosmos/tx/v1beta1/txs", b'{"tx_bytes": "AAAA", "mode": "BROADCAST_MODE_BLOCK"}', 400, 3,
     "unsupported broadcast mode"),
    ("POST", "/cosmos/tx/v1beta1/txs", b"", 400, 3, "invalid empty tx"),
    ("POST", "/cosmos/tx/v1beta1/txs", b"[" * 100_000, 400, 3, "the body is not JSON"),
    ("POST", "/cosmos/tx/v1beta1/txs", b'{"tx_bytes": NaN}', 400, 3, "the body is not JSON"),
    ("POST", "/cosmos/tx/v1beta1/simulate", b'{"tx_bytes": "AAAA"}', 400, 3, ""),
    ("POST", "/cosmos/tx/v1beta1/simulate", b'{"tx": {"body": {"messages": [{"@type": {}}]}}}', 400, 3,
     "the body is no cosmos.tx.v1beta1.SimulateRequest"),
    ("POST", "/cosmos/tx/v1beta1/decode", b'{"tx_bytes": "/w=="}', 400, 3, "not a cosmos.tx.v1beta1.Tx"),
    ("GET", "/cosmos/nothing", None, 501, 12, "Not Implemented"),
    ("GET", "/cosmos/bank/v1beta1/params/", None, 501, 12, "Not Implemented"),
    ("POST", "/cosmos/bank/v1beta1/params", b"{}", 501, 12, "Not Implemented"),
    ("GET", "/cosmos/tx/v1beta1/simulate", None, 501, 12, "Not Implemented"),
    ("DELETE", "/cosmos/bank/v1beta1/params", None, 501, 12, "Not Implemented"),
]


@pytest.mark.parametrize("method,path,body,status,code,fragment", BAD_REQUESTS)
def test_bad_requests_get_the_sdk_error_shape(node, method, path, body, status, code, fragment):
    got, shown, headers = get(node, path, {"Content-Type": "application/json"} if body is not None else {}, method, body)
    assert (got, shown["code"]) == (status, code), shown
    assert set(shown) == {"code", "message", "details"} and shown["details"] == [] and fragment in shown["message"]
    assert "\n" not in shown["message"] and "Traceback" not in shown["message"]
    assert headers["Content-Type"] == "application/json"


def test_any_content_type_is_read_as_json_as_the_sdk_does(node):
    body = json.dumps({"tx_bytes": "AAAA", "mode": "BROADCAST_MODE_SYNC"}).encode()
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "application/octet-stream"):
        status, shown, _ = get(node, "/cosmos/tx/v1beta1/txs", {"Content-Type": content_type}, "POST", body)
        assert status == 200 and shown["tx_response"]["code"] == 2, (content_type, shown)  # the tx itself is refused
    status, shown, _ = get(node, "/cosmos/tx/v1beta1/txs", {"Content-Type": "multipart/form-data; boundary=x"},
                           "POST", b"--x\r\nContent-Disposition: form-data; name=tx_bytes\r\n\r\nAAAA\r\n--x--\r\n")
    assert status == 400 and "the body is not JSON (multipart/form-data" in shown["message"]


def test_cors_for_the_allowed_origin_only(node):
    path = f"/cosmos/bank/v1beta1/balances/{ALICE}"
    _, _, headers = get(node, path, {"Origin": ALLOWED_ORIGIN})
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN and headers["Vary"] == "Origin"
    assert grpc_server.HEIGHT_HEADER in headers["Access-Control-Expose-Headers"]
    status, _, headers = get(node, path, {"Origin": "https://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    assert "Access-Control-Allow-Origin" not in get(node, path)[2]

    request = urllib.request.Request(node["rest"] + "/cosmos/tx/v1beta1/txs", method="OPTIONS", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-cosmos-block-height"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-cosmos-block-height"
    for method, headers, expected in (("DELETE", "", 405), ("POST", "x-secret", 403)):
        request = urllib.request.Request(node["rest"] + "/cosmos/tx/v1beta1/txs", method="OPTIONS", headers={
            "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == expected


def test_openapi_document_lists_every_route(node):
    status, document, _ = get(node, rest.OPENAPI_PATH)
    assert status == 200 and document["openapi"].startswith("3.")
    for method, template, _ in rest.ROUTES:
        operation = document["paths"][template.replace("=**}", "}")][method.lower()]
        path_parameters = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert path_parameters == set(re.findall(r"\{(\w+)", template))
    balance = document["paths"]["/cosmos/bank/v1beta1/balances/{address}"]["get"]
    assert {"pagination.key", "pagination.limit", "pagination.count_total"} <= {p["name"] for p in balance["parameters"]}


def test_chain_info_and_a_keplr_like_send_over_rest(node, tmp_path):
    result = invoke("chain-info", "--rpc", node["rpc"], "--rest", node["rest"], "--grpc", node["grpc"],
                    "--output-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    chain = json.loads((tmp_path / "chain.json").read_text())
    assets = json.loads((tmp_path / "assetlist.json").read_text())
    keplr = json.loads((tmp_path / "keplr.json").read_text())
    assert chain["chain_id"] == keplr["chainId"] == "maxwell-rest-1"
    assert chain["bech32_prefix"] == "mxw" and chain["slip44"] == keplr["bip44"]["coinType"] == 118
    assert chain["fees"]["fee_tokens"][0] == {"denom": "ujoule", "fixed_min_gas_price": 0.025, "low_gas_price": 0.025,
                                              "average_gas_price": 0.05, "high_gas_price": 0.1}
    assert chain["apis"] == {"rpc": [{"address": node["rpc"]}], "rest": [{"address": node["rest"]}],
                             "grpc": [{"address": node["grpc"]}]}
    asset = assets["assets"][0]
    assert (asset["base"], asset["display"], asset["symbol"]) == ("ujoule", "joule", "JOULE")
    assert {"denom": "joule", "exponent": 6} in asset["denom_units"]
    assert keplr["bech32Config"]["bech32PrefixValAddr"] == "mxwvaloper"
    assert keplr["feeCurrencies"][0] == {"coinDenom": "JOULE", "coinMinimalDenom": "ujoule", "coinDecimals": 6,
                                         "gasPriceStep": {"low": 0.025, "average": 0.05, "high": 0.1}}
    assert keplr["stakeCurrency"]["coinMinimalDenom"] == "ujoule" and keplr["rest"] == node["rest"]
    printed = invoke("chain-info", "--rpc", node["rpc"], "--rest", node["rest"])
    assert json.loads(printed.stdout)["keplr.json"] == keplr

    if shutil.which("node") is None or not (COSMJS_DIR / "node_modules" / "@cosmjs" / "stargate").is_dir():
        pytest.skip("node or tests/cosmjs/node_modules is missing: the Keplr-like flow is skipped")
    bob = keyring.get_key(node["home"], "file", "bob").address
    before = {address: int(get(node, f"/cosmos/bank/v1beta1/balances/{address}/by_denom?denom=ujoule")[1]
                           ["balance"]["amount"]) for address in (ALICE, bob)}
    run = subprocess.run(["node", str(COSMJS_DIR / "rest_flow.mjs"), str(tmp_path / "keplr.json"), bob,
                          str(SEND_AMOUNT)], input=MNEMONIC, capture_output=True, text=True, timeout=120, cwd=COSMJS_DIR)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["sender"] == ALICE and report["before"] == {ALICE: str(before[ALICE]), bob: str(before[bob])}
    assert report["tx"]["code"] == 0 and report["tx"]["memo"] == "rest flow" and int(report["tx"]["height"]) >= 1
    fee = int(report["fee"])
    assert fee == math.ceil(report["gas"] * keplr["feeCurrencies"][0]["gasPriceStep"]["average"])
    assert report["gas"] >= int(report["simulatedGas"]) > 0
    assert report["after"] == {ALICE: str(before[ALICE] - SEND_AMOUNT - fee), bob: str(before[bob] + SEND_AMOUNT)}
    if report["notFound"] is not None:
        assert report["notFound"]["code"] == grpc.StatusCode.NOT_FOUND.value[0]


def test_chain_info_errors(node):
    assert_one_line_error(invoke("chain-info", "--rpc", node["rpc"], "--rest", "ftp://x"), "invalid REST URL")
    port = compute_free_port()
    assert_one_line_error(invoke("chain-info", "--rpc", node["rpc"], "--rest", f"http://127.0.0.1:{port}"),
                          "cannot reach the REST gateway")
    assert_one_line_error(invoke("chain-info", "--rpc", node["rpc"], "--rest", node["rpc"]),
                          "answered /cosmos/base/tendermint/v1beta1/node_info")
    assert_one_line_error(invoke("chain-info", "--rpc", node["rpc"], "--rest", node["rest"], "--network-type", "x"),
                          "invalid network type")


def test_listen_address_and_cors_options_are_checked():
    assert_one_line_error(invoke("dev", "--rest", "nowhere", "--home", "/nonexistent"), "invalid REST listen address")
    assert_one_line_error(invoke("start", "--rest", "1.2.3.4:99999", "--home", "/nonexistent"),
                          "invalid REST listen address")
    assert_one_line_error(invoke("dev", "--rest-cors", "wallet.example", "--home", "/nonexistent"),
                          "invalid CORS origin")


def test_a_rest_port_in_use_is_a_one_line_error(node, tmp_path):
    init_funded_home(tmp_path)
    rpc = f"tcp://127.0.0.1:{compute_free_port()}"
    result = subprocess.run([str(MAXWELL), "dev", "--home", str(tmp_path), "--rpc", rpc, "--grpc", "off",
                             "--rest", node["rest"].removeprefix("http://")], capture_output=True, text=True, timeout=60)
    assert_one_line_error(result, "cannot listen for REST on 127.0.0.1")
