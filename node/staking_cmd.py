"""CLI of staking and slashing, as simd users know it: `maxwell tx staking delegate|unbond|redelegate`,
`maxwell tx slashing unjail`, `maxwell query staking validators|validator|delegation|params` and
`maxwell query slashing signing-infos|signing-info|params`.

`mount` adds them to node.cli's app (node.main does). A validator is named by its operator address
(mxwvaloper…) or by the name of the key that operates it.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from chain.coins import DENOM
from node import cli
from node.cli import Backend, CliError, Home, KeyringBackend, Node, Output, OutputFormat
from node.client_config import DEFAULT_NODE
from node.infer_cmd import Sender, TxOptions, compute_record, get_event_attribute, parse_amount, with_tx_options

PAGE_LIMIT = 1000

tx_staking_app = cli.make_typer("Bond JOULE to validators, and take it back.")
tx_slashing_app = cli.make_typer("Bring a jailed validator back.")
query_staking_app = cli.make_typer("Validators, delegations and staking parameters.")
query_slashing_app = cli.make_typer("Validators' signing records and slashing parameters.")

Validator = Annotated[str, typer.Argument(metavar="VALIDATOR", help="Operator address (mxwvaloper…) or key name.")]
Amount = Annotated[str, typer.Argument(help=f"Amount in {DENOM}, e.g. 1000000{DENOM}.")]


def resolve_operator(home: Path, backend: KeyringBackend, text: str) -> str:
    """An operator address as given, or the operator address of a key of that name."""
    from chain import crypto, validators
    try:
        validators.parse_operator(text)
        return text
    except validators.InvalidAddressError:
        pass
    try:
        account = cli.resolve_address(home, backend, text)
    except CliError:
        raise CliError(f"{text!r} is neither a validator address (mxwvaloper…) nor a key in the "
                       f"{backend.value} keyring") from None
    return validators.format_operator(crypto.decode_address(account))


def compute_coin(amount: int) -> dict:
    return {"denom": DENOM, "amount": str(amount)}


def get_all_validators(rpc: "Client") -> "list[staking_pb2.Validator]":
    from chain.proto.cosmos.staking.v1beta1 import query_pb2 as staking_query_pb2
    found, key = [], b""
    while True:
        reply = rpc.query(staking_query_pb2.QueryValidatorsRequest(pagination={"key": key, "limit": PAGE_LIMIT}),
                          staking_query_pb2.QueryValidatorsResponse)
        found.extend(reply.validators)
        key = reply.pagination.next_key
        if not key:
            return found


def show_records(output: OutputFormat, title: str, records: list[dict], columns: dict[str, str]) -> None:
    """JSON: the SDK's records; text: a table of `columns` (heading -> record field)."""
    if output == OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
        return
    cli.show_table(title, list(columns), [[cli.compute_text(r.get(field, "")) for field in columns.values()]
                                          for r in records])


def compute_sdk_record(message) -> dict:
    """The message as the SDK's JSON writes it (LegacyDecs as decimals)."""
    from chain.sdktypes import encode_sdk_json
    return encode_sdk_json(compute_record(message), message.DESCRIPTOR)


def compute_validator_record(validator: "staking_pb2.Validator") -> dict:
    from chain import validators
    record = compute_sdk_record(validator)
    record["consensus_address"] = validators.format_consensus(validators.compute_consensus_address(validator))
    record["moniker"] = validator.description.moniker
    record["power"] = str(validators.compute_power(validator))
    return record


VALIDATOR_COLUMNS = {"operator": "operator_address", "moniker": "moniker", "status": "status", "jailed": "jailed",
                     "tokens": "tokens", "power": "power"}


# --- transactions ----------------------------------------------------------------------------

@tx_staking_app.command("delegate")
@with_tx_options
def tx_staking_delegate(
    sender: Sender, validator: Validator, amount: Amount,
    *, tx: TxOptions,
):
    """Bond AMOUNT to VALIDATOR: its voting power grows from the next block."""
    from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx_pb2
    value, operator = parse_amount(amount), resolve_operator(tx.home, tx.keyring_backend, validator)
    signer = tx.load_signer(sender)
    message = staking_tx_pb2.MsgDelegate(delegator_address=signer.address, validator_address=operator,
                                         amount=compute_coin(value))
    tx.execute(signer, [message], {DENOM: value})


@tx_staking_app.command("unbond")
@with_tx_options
def tx_staking_unbond(
    sender: Sender, validator: Validator, amount: Amount,
    *, tx: TxOptions,
):
    """Undelegate AMOUNT from VALIDATOR: it returns to your balance after the unbonding time."""
    from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx_pb2
    value, operator = parse_amount(amount), resolve_operator(tx.home, tx.keyring_backend, validator)
    signer = tx.load_signer(sender)
    message = staking_tx_pb2.MsgUndelegate(delegator_address=signer.address, validator_address=operator,
                                           amount=compute_coin(value))
    tx.execute(signer, [message], {},
               describe=lambda result: {"completion_time": get_event_attribute(result, "unbond", "completion_time")})


@tx_staking_app.command("redelegate")
@with_tx_options
def tx_staking_redelegate(
    sender: Sender,
    source: Annotated[str, typer.Argument(metavar="SRC_VALIDATOR", help="Operator address or key name.")],
    destination: Annotated[str, typer.Argument(metavar="DST_VALIDATOR", help="Operator address or key name.")],
    amount: Amount,
    *, tx: TxOptions,
):
    """Move AMOUNT of your bond from SRC_VALIDATOR to DST_VALIDATOR at once."""
    from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx_pb2
    value = parse_amount(amount)
    src, dst = (resolve_operator(tx.home, tx.keyring_backend, text) for text in (source, destination))
    signer = tx.load_signer(sender)
    message = staking_tx_pb2.MsgBeginRedelegate(delegator_address=signer.address, validator_src_address=src,
                                                validator_dst_address=dst, amount=compute_coin(value))
    tx.execute(signer, [message], {})


@tx_slashing_app.command("unjail")
@with_tx_options
def tx_slashing_unjail(
    sender: Annotated[str, typer.Argument(metavar="FROM", help="The key that operates the jailed validator.")],
    *, tx: TxOptions,
):
    """Bring your validator back into the set once its jail time is over."""
    from chain import crypto, validators
    from chain.proto.cosmos.slashing.v1beta1 import tx_pb2 as slashing_tx_pb2
    signer = tx.load_signer(sender)
    operator = validators.format_operator(crypto.decode_address(signer.address))
    tx.execute(signer, [slashing_tx_pb2.MsgUnjail(validator_addr=operator)], {}, extra={"validator": operator})


# --- queries ---------------------------------------------------------------------------------

@query_staking_app.command("validators")
def query_staking_validators(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Every validator: status, jailed, tokens and voting power."""
    from node.client import Client
    records = [compute_validator_record(v) for v in get_all_validators(Client(node))]
    show_records(output, "validators", records, VALIDATOR_COLUMNS)


@query_staking_app.command("validator")
def query_staking_validator(
    validator: Validator, node: Node = DEFAULT_NODE, keyring_backend: Backend = KeyringBackend.file,
    home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text,
):
    """One validator."""
    from chain.proto.cosmos.staking.v1beta1 import query_pb2 as staking_query_pb2
    from node.client import Client
    operator = resolve_operator(home, keyring_backend, validator)
    reply = Client(node).query(staking_query_pb2.QueryValidatorRequest(validator_addr=operator),
                               staking_query_pb2.QueryValidatorResponse)
    cli.show(output, compute_validator_record(reply.validator))


@query_staking_app.command("delegation")
def query_staking_delegation(
    delegator: Annotated[str, typer.Argument(help="An address or the name of a key.")], validator: Validator,
    node: Node = DEFAULT_NODE, keyring_backend: Backend = KeyringBackend.file, home: Home = cli.DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """What DELEGATOR has bonded to VALIDATOR."""
    from chain.proto.cosmos.staking.v1beta1 import query_pb2 as staking_query_pb2
    from node.client import Client
    request = staking_query_pb2.QueryDelegationRequest(
        delegator_addr=cli.resolve_address(home, keyring_backend, delegator),
        validator_addr=resolve_operator(home, keyring_backend, validator))
    reply = Client(node).query(request, staking_query_pb2.QueryDelegationResponse)
    response = reply.delegation_response
    cli.show(output, {**compute_sdk_record(response.delegation), "balance": compute_record(response.balance)})


@query_staking_app.command("params")
def query_staking_params(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Staking parameters (unbonding time, max validators, bond denom, …)."""
    from chain.proto.cosmos.staking.v1beta1 import query_pb2 as staking_query_pb2
    from node.client import Client
    reply = Client(node).query(staking_query_pb2.QueryParamsRequest(), staking_query_pb2.QueryParamsResponse)
    cli.show(output, compute_sdk_record(reply.params))


@query_slashing_app.command("signing-infos")
def query_slashing_signing_infos(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Every validator's signing record: missed blocks, jailed until, tombstoned."""
    from chain.proto.cosmos.slashing.v1beta1 import query_pb2 as slashing_query_pb2
    from node.client import Client
    rpc, infos, key = Client(node), [], b""
    while True:
        reply = rpc.query(slashing_query_pb2.QuerySigningInfosRequest(pagination={"key": key, "limit": PAGE_LIMIT}),
                          slashing_query_pb2.QuerySigningInfosResponse)
        infos.extend(compute_record(info) for info in reply.info)
        key = reply.pagination.next_key
        if not key:
            break
    show_records(output, "signing infos", infos, {
        "consensus address": "address", "missed": "missed_blocks_counter", "jailed until": "jailed_until",
        "tombstoned": "tombstoned"})


@query_slashing_app.command("signing-info")
def query_slashing_signing_info(
    address: Annotated[str, typer.Argument(help="Consensus address (mxwvalcons…).")],
    node: Node = DEFAULT_NODE, output: Output = OutputFormat.text,
):
    """One validator's signing record."""
    from chain.proto.cosmos.slashing.v1beta1 import query_pb2 as slashing_query_pb2
    from node.client import Client
    reply = Client(node).query(slashing_query_pb2.QuerySigningInfoRequest(cons_address=address),
                               slashing_query_pb2.QuerySigningInfoResponse)
    cli.show(output, compute_record(reply.val_signing_info))


@query_slashing_app.command("params")
def query_slashing_params(node: Node = DEFAULT_NODE, output: Output = OutputFormat.text):
    """Slashing parameters (window, minimum signed, jail time, slash fractions)."""
    from chain.proto.cosmos.slashing.v1beta1 import query_pb2 as slashing_query_pb2
    from node.client import Client
    reply = Client(node).query(slashing_query_pb2.QueryParamsRequest(), slashing_query_pb2.QueryParamsResponse)
    cli.show(output, compute_sdk_record(reply.params))


def mount() -> None:
    cli.tx_app.add_typer(tx_staking_app, name="staking")
    cli.tx_app.add_typer(tx_slashing_app, name="slashing")
    cli.query_app.add_typer(query_staking_app, name="staking")
    cli.query_app.add_typer(query_slashing_app, name="slashing")
