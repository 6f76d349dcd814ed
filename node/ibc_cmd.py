"""CLI of IBC, as simd users know it: `maxwell tx ibc-transfer transfer PORT CHANNEL RECEIVER AMOUNT`,
`maxwell query ibc client-states|connections|channels|denom-traces|escrow-address`, and interchain
accounts' `maxwell tx|query interchain-accounts controller|host …` (alias `ica`).

`mount` adds them to node.cli's app (node.main does).
"""

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from node import cli
from node.cli import CliError, Node, Output, OutputFormat
from node.client_config import DEFAULT_NODE
from node.infer_cmd import Sender, TxOptions, compute_record, get_event_attribute, with_tx_options

PAGE_LIMIT = 1000
DEFAULT_TIMEOUT_SECONDS = 600
NANOS = 10**9
DEFAULT_ICA_TIMEOUT_NS = 10 * 60 * NANOS

tx_transfer_app = cli.make_typer("ICS-20 token transfers over IBC.")
query_ibc_app = cli.make_typer("IBC clients, connections, channels and denom traces.")
tx_ica_app = cli.make_typer("Interchain accounts (ICS-27).")
tx_controller_app = cli.make_typer("Accounts on other chains, controlled from here.")
query_ica_app = cli.make_typer("Interchain accounts (ICS-27).")
query_controller_app = cli.make_typer("Accounts on other chains, controlled from here.")
tx_host_app = cli.make_typer("Accounts here, controlled from other chains.")
query_host_app = cli.make_typer("Accounts here, controlled from other chains.")


class Encoding(str, Enum):
    proto3 = "proto3"
    proto3json = "proto3json"


class Ordering(str, Enum):
    ordered = "ORDER_ORDERED"
    unordered = "ORDER_UNORDERED"


def get_pages(rpc: "Client", make_request, response_class, field: str) -> list:
    found, key = [], b""
    while True:
        reply = rpc.query(make_request({"key": key, "limit": PAGE_LIMIT}), response_class)
        found.extend(getattr(reply, field))
        key = reply.pagination.next_key
        if not key:
            return found


def show_list(output: OutputFormat, title: str, records: list[dict], columns: dict[str, str]) -> None:
    if output == OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
        return
    cli.show_table(title, list(columns), [[cli.compute_text(r.get(field, "")) for field in columns.values()]
                                          for r in records])


@tx_transfer_app.command("transfer")
@with_tx_options
def tx_ibc_transfer(
    sender: Sender,
    port: Annotated[str, typer.Argument(help="Source port, e.g. transfer.")],
    channel: Annotated[str, typer.Argument(help="Source channel, e.g. channel-0.")],
    receiver: Annotated[str, typer.Argument(help="The receiver's address on the other chain.")],
    amount: Annotated[str, typer.Argument(help="One coin, e.g. 1000ujoule or 5ibc/<hash>.")],
    timeout_seconds: Annotated[int, typer.Option("--packet-timeout-seconds", min=0,
                                                 help="Timeout from the last block's time; 0 for none.")]
    = DEFAULT_TIMEOUT_SECONDS,
    timeout_height: Annotated[str, typer.Option("--packet-timeout-height",
                                                help="Timeout height on the other chain, REVISION-HEIGHT.")] = "0-0",
    memo: Annotated[str, typer.Option("--memo")] = "",
    *, tx: TxOptions,
):
    """Send AMOUNT to RECEIVER over CHANNEL: escrowed here (or burnt, for a voucher going home) until the
    packet is acknowledged; refunded on an error acknowledgement or a timeout."""
    from google.protobuf.timestamp_pb2 import Timestamp
    from chain.proto.ibc.applications.transfer.v1 import tx_pb2 as transfer_tx_pb2
    coins = cli.parse_coins_text(amount)
    if len(coins) != 1:
        raise CliError(f"invalid amount {amount!r}: transfer one coin at a time")
    (denom, value), = coins.items()
    try:
        revision, height = (int(part) for part in timeout_height.split("-"))
    except ValueError:
        raise CliError(f"invalid timeout height {timeout_height!r}: expected REVISION-HEIGHT, e.g. 1-1000") from None
    signer = tx.load_signer(sender)
    timestamp = 0
    if timeout_seconds:
        block_time = Timestamp()
        block_time.FromJsonString(signer.rpc.status().latest_block_time)
        timestamp = block_time.ToNanoseconds() + timeout_seconds * NANOS
    if not timestamp and not height:
        raise CliError("a transfer needs a timeout: give --packet-timeout-seconds or --packet-timeout-height")
    message = transfer_tx_pb2.MsgTransfer(
        source_port=port, source_channel=channel, token={"denom": denom, "amount": str(value)}, sender=signer.address,
        receiver=receiver, timeout_height={"revision_number": revision, "revision_height": height},
        timeout_timestamp=timestamp, memo=memo)
    tx.execute(signer, [message], coins,
               describe=lambda result: {"sequence": get_event_attribute(result, "send_packet", "packet_sequence")})


@query_ibc_app.command("client-states")
def query_client_states(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """The light clients of other chains kept here."""
    from chain.proto.ibc.core.client.v1 import query_pb2 as client_query_pb2
    from chain.proto.ibc.lightclients.tendermint.v1 import tendermint_pb2
    from node.client import Client
    states = get_pages(Client(node), lambda page: client_query_pb2.QueryClientStatesRequest(pagination=page),
                       client_query_pb2.QueryClientStatesResponse, "client_states")
    records = []
    for identified in states:
        state = tendermint_pb2.ClientState.FromString(identified.client_state.value)
        records.append({"client_id": identified.client_id, "chain_id": state.chain_id,
                        "latest_height": f"{state.latest_height.revision_number}-{state.latest_height.revision_height}",
                        "frozen": bool(state.frozen_height.revision_height), "client_state": compute_record(state)})
    show_list(output, "clients", records, {"client": "client_id", "chain": "chain_id", "latest height": "latest_height",
                                           "frozen": "frozen"})


@query_ibc_app.command("connections")
def query_connections(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Connections between the clients here and their counterparts."""
    from chain.proto.ibc.core.connection.v1 import query_pb2 as connection_query_pb2
    from node.client import Client
    connections = get_pages(Client(node), lambda page: connection_query_pb2.QueryConnectionsRequest(pagination=page),
                            connection_query_pb2.QueryConnectionsResponse, "connections")
    records = [compute_record(c) for c in connections]
    show_list(output, "connections", records, {"connection": "id", "client": "client_id", "state": "state"})


@query_ibc_app.command("channels")
def query_channels(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Channels, with their counterparties and state."""
    from chain.proto.ibc.core.channel.v1 import query_pb2 as channel_query_pb2
    from node.client import Client
    channels = get_pages(Client(node), lambda page: channel_query_pb2.QueryChannelsRequest(pagination=page),
                         channel_query_pb2.QueryChannelsResponse, "channels")
    records = [{**compute_record(c), "counterparty": f"{c.counterparty.port_id}/{c.counterparty.channel_id}"}
               for c in channels]
    show_list(output, "channels", records, {"port": "port_id", "channel": "channel_id", "state": "state",
                                            "counterparty": "counterparty", "version": "version"})


@query_ibc_app.command("denom-traces")
def query_denom_traces(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """The vouchers minted here: each `ibc/<hash>` with the path it came along."""
    from chain.proto.ibc.applications.transfer.v1 import query_pb2 as transfer_query_pb2
    from node.client import Client
    traces = get_pages(Client(node), lambda page: transfer_query_pb2.QueryDenomTracesRequest(pagination=page),
                       transfer_query_pb2.QueryDenomTracesResponse, "denom_traces")
    from ibc import transfer
    records = [{"denom": transfer.compute_ibc_denom(t), "path": t.path, "base_denom": t.base_denom} for t in traces]
    show_list(output, "denom traces", records, {"denom": "denom", "path": "path", "base denom": "base_denom"})


@query_ibc_app.command("escrow-address")
def query_escrow_address(
    port: Annotated[str, typer.Argument()], channel: Annotated[str, typer.Argument()],
    node: Node = DEFAULT_NODE, output: Output = OutputFormat.text,
):
    """The account that holds this chain's tokens sent over CHANNEL."""
    from chain.proto.ibc.applications.transfer.v1 import query_pb2 as transfer_query_pb2
    from node.client import Client
    reply = Client(node).query(transfer_query_pb2.QueryEscrowAddressRequest(port_id=port, channel_id=channel),
                               transfer_query_pb2.QueryEscrowAddressResponse)
    cli.show(output, {"escrow_address": reply.escrow_address})


@tx_controller_app.command("register")
@with_tx_options
def tx_ica_register(
    sender: Sender,
    connection: Annotated[str, typer.Argument(help="The connection here to the host chain, e.g. connection-0.")],
    ordering: Annotated[Ordering, typer.Option("--ordering", help="The channel's ordering.")] = Ordering.unordered,
    channel_version: Annotated[str, typer.Option("--version", help="Channel version (ICS-27 metadata JSON); "
                                                                   "empty for the default.")] = "",
    *, tx: TxOptions,
):
    """Open a channel from port icacontroller-<your address> to the host's icahost over CONNECTION; once a
    relayer finishes the handshake, the host has made your account there."""
    from chain.proto.ibc.applications.interchain_accounts.controller.v1 import tx_pb2 as ica_tx_pb2
    from chain.proto.ibc.core.channel.v1 import channel_pb2
    signer = tx.load_signer(sender)
    message = ica_tx_pb2.MsgRegisterInterchainAccount(owner=signer.address, connection_id=connection,
                                                     version=channel_version,
                                                     ordering=channel_pb2.Order.Value(ordering.value))
    tx.execute(signer, [message], {},
               describe=lambda result: {"port_id": get_event_attribute(result, "channel_open_init", "port_id"),
                                        "channel_id": get_event_attribute(result, "channel_open_init", "channel_id")})


def parse_packet_data(text: str) -> "packet_pb2.InterchainAccountPacketData":
    """Packet data as JSON, or a file of it (what `simd tx ica host generate-packet-data` prints)."""
    from google.protobuf import json_format
    from chain.proto.ibc.applications.interchain_accounts.v1 import packet_pb2
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text()
    try:
        return json_format.Parse(text, packet_pb2.InterchainAccountPacketData())
    except json_format.ParseError as error:
        raise CliError(f"invalid packet data: {error}") from None


@tx_controller_app.command("send-tx")
@with_tx_options
def tx_ica_send_tx(
    sender: Sender,
    connection: Annotated[str, typer.Argument(help="The connection of your interchain account, e.g. connection-0.")],
    packet_data: Annotated[str, typer.Argument(help="InterchainAccountPacketData as JSON, or a file of it.")],
    relative_timeout: Annotated[int, typer.Option("--relative-packet-timeout", min=1,
                                                  help="Timeout in nanoseconds from the last block's time.")]
    = DEFAULT_ICA_TIMEOUT_NS,
    *, tx: TxOptions,
):
    """Send your interchain account on CONNECTION messages to run on the host chain."""
    from chain.proto.ibc.applications.interchain_accounts.controller.v1 import tx_pb2 as ica_tx_pb2
    data = parse_packet_data(packet_data)
    signer = tx.load_signer(sender)
    message = ica_tx_pb2.MsgSendTx(owner=signer.address, connection_id=connection, packet_data=data,
                                   relative_timeout=relative_timeout)
    tx.execute(signer, [message], {},
               describe=lambda result: {"sequence": get_event_attribute(result, "send_packet", "packet_sequence")})


@query_controller_app.command("interchain-account")
def query_interchain_account(
    owner: Annotated[str, typer.Argument(help="The owner's address here.")],
    connection: Annotated[str, typer.Argument(help="The connection to the host chain.")],
    node: Node = DEFAULT_NODE, output: Output = OutputFormat.text,
):
    """The address of OWNER's account on the host chain of CONNECTION."""
    from chain.proto.ibc.applications.interchain_accounts.controller.v1 import query_pb2 as ica_query_pb2
    from node.client import Client
    reply = Client(node).query(ica_query_pb2.QueryInterchainAccountRequest(owner=owner, connection_id=connection),
                               ica_query_pb2.QueryInterchainAccountResponse)
    cli.show(output, {"address": reply.address})


@query_controller_app.command("params")
def query_controller_params(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Whether this chain controls interchain accounts."""
    from chain.proto.ibc.applications.interchain_accounts.controller.v1 import query_pb2 as ica_query_pb2
    from node.client import Client
    reply = Client(node).query(ica_query_pb2.QueryParamsRequest(), ica_query_pb2.QueryParamsResponse)
    cli.show(output, {"controller_enabled": reply.params.controller_enabled})


@tx_host_app.command("generate-packet-data")
def tx_ica_generate_packet_data(
    messages: Annotated[str, typer.Argument(help="A message as JSON with its @type, or a JSON list of them.")],
    memo: Annotated[str, typer.Option("--memo", help="The packet's memo.")] = "",
    encoding: Annotated[Encoding, typer.Option("--encoding", help="The channel's encoding.")] = Encoding.proto3,
):
    """Print packet data that has this chain run MESSAGES for an interchain account: the file a
    controller chain's `tx interchain-accounts controller send-tx` takes."""
    from google.protobuf import json_format
    from chain import app  # noqa: F401 (every message type, for the @type of each)
    from chain.genesis import encode_json
    from chain.proto.ibc.applications.interchain_accounts.v1 import packet_pb2
    try:
        parsed = json.loads(messages)
        cosmos_tx = json_format.ParseDict({"messages": parsed if isinstance(parsed, list) else [parsed]},
                                          packet_pb2.CosmosTx())
    except (ValueError, json_format.ParseError) as error:
        raise CliError(f"invalid messages: {error}") from None
    def compute_json(message) -> str:  # as the SDK's codec writes it: proto field names, every field
        return json.dumps(encode_json(message, all_fields=True), separators=(",", ":"))

    data = cosmos_tx.SerializeToString() if encoding == Encoding.proto3 else compute_json(cosmos_tx).encode()
    typer.echo(compute_json(packet_pb2.InterchainAccountPacketData(type=packet_pb2.TYPE_EXECUTE_TX, data=data,
                                                                   memo=memo)))


@query_host_app.command("params")
def query_host_params(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Whether this chain hosts interchain accounts, and the messages they may run."""
    from chain.proto.ibc.applications.interchain_accounts.host.v1 import query_pb2 as host_query_pb2
    from node.client import Client
    reply = Client(node).query(host_query_pb2.QueryParamsRequest(), host_query_pb2.QueryParamsResponse)
    cli.show(output, {"host_enabled": reply.params.host_enabled, "allow_messages": list(reply.params.allow_messages)})


def mount() -> None:
    cli.tx_app.add_typer(tx_transfer_app, name="ibc-transfer")
    cli.query_app.add_typer(query_ibc_app, name="ibc")
    tx_ica_app.add_typer(tx_controller_app, name="controller")
    query_ica_app.add_typer(query_controller_app, name="controller")
    tx_ica_app.add_typer(tx_host_app, name="host")
    query_ica_app.add_typer(query_host_app, name="host")
    for name in ("interchain-accounts", "ica"):
        cli.tx_app.add_typer(tx_ica_app, name=name, hidden=name == "ica")
        cli.query_app.add_typer(query_ica_app, name=name, hidden=name == "ica")
