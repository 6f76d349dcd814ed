"""CLI of the compute market, the inference module and the worker daemon.

`mount` adds its commands to `node.cli`'s app (node.main does, for the `maxwell` command): `maxwell market providers|book|
clearing`, `maxwell tx market bid|cancel|register-provider|report-heat`, `maxwell tx process
start|write|delete|top-up|stop`, `maxwell query process|inference`, `maxwell infer request` and
`maxwell worker start|dev`. Conventions are node.cli's: --home, --output text|json, one-line errors.
"""

import functools
import inspect
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from chain.coins import DENOM, parse_coin_string
from node import app_config, cli, client_config
from node.cli import Backend, CliError, Home, KeyringBackend, Node, Output, OutputFormat, PassphraseFile
from node.client_config import DEFAULT_NODE

DEFAULT_DEADLINE_BLOCKS = 100
DEFAULT_ORDER_LIFETIME_BLOCKS = 100
DEFAULT_ZONE = "local"
DEFAULT_ASK = 100
DEFAULT_SLOTS = 4
DEFAULT_STAKE = 1_000_000
PAGE_LIMIT = 1000
MILLI = 1000


class RequestInterrupted(CliError):
    """Ctrl-C while an inference request waits for its block: the request id is not known yet."""


market_app = cli.make_group("market")
tx_market_app = cli.make_typer("Market transactions: bid, cancel, register a provider, report heat.")
tx_process_app = cli.make_typer("Processes: lease slots and keep memory on chain.")
infer_app = cli.make_group("infer")
worker_app = cli.make_group("worker")

Sender = Annotated[str, typer.Argument(metavar="FROM", help="Name (or address) of a key in the keyring.")]
Gas = Annotated[str, typer.Option("--gas", help="Gas limit, or auto to simulate the tx first.")]
Fees = Annotated[Optional[str], typer.Option("--fees", help=f"Fee in {DENOM}; default: gas x minimum gas price.")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the tx is in a block.")]


# --- helpers -----------------------------------------------------------------------------------

def compute_record(message) -> dict:
    from google.protobuf import json_format
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def parse_amount(text: str) -> int:
    """'1000ujoule' or '1000' -> 1000; positive and in ujoule."""
    amount, denom = parse_coin_string(text if not text.isdigit() else text + DENOM)
    if denom != DENOM:
        raise CliError(f"invalid amount {text!r}: the market is paid in {DENOM}")
    if amount == 0:
        raise CliError(f"invalid amount {text!r}: must be positive")
    return amount


def parse_memory_bytes(text: str, hex_input: bool) -> bytes:
    if not hex_input:
        return text.encode()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CliError(f"invalid hex {text!r}") from None


def load_signer(home: Path, backend: KeyringBackend, passphrase_file: Path | None, name: str, node: str) -> "txclient.Signer":
    from node import txclient
    from node.client import Client
    private_key = cli.load_private_key(home, backend, passphrase_file, name)
    return txclient.load_signer(Client(node), private_key)


@dataclass(frozen=True)
class TxOptions:
    """What every tx command takes besides its own arguments (with_tx_options adds them as options)."""
    gas: str
    fees: str | None
    gas_prices: str | None
    wait: bool
    yes: bool
    gas_adjustment: float
    node: str
    keyring_backend: KeyringBackend
    keyring_passphrase_file: Path | None
    home: Path
    output: OutputFormat

    def load_signer(self, sender: str) -> "txclient.Signer":
        return load_signer(self.home, self.keyring_backend, self.keyring_passphrase_file, sender, self.node)

    def execute(self, signer: "txclient.Signer", messages: list, spend: dict[str, int], extra: dict | None = None,
                describe=None) -> None:
        cli.execute_tx(signer, messages, spend, self.gas, cli.parse_fee(self.fees, self.gas_prices), self.wait,
                       self.output, extra=extra, describe=describe, yes=self.yes, gas_adjustment=self.gas_adjustment)


TX_PARAMETERS = tuple(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
                      for name, annotation, default in (
    ("gas", Gas, client_config.DEFAULT_GAS), ("fees", Fees, None), ("gas_prices", cli.GasPrices, None),
    ("wait", Wait, True), ("yes", cli.Yes, False), ("gas_adjustment", cli.GasAdjustment, cli.DEFAULT_GAS_ADJUSTMENT),
    ("node", Node, DEFAULT_NODE), ("keyring_backend", Backend, KeyringBackend.file),
    ("keyring_passphrase_file", PassphraseFile, None), ("home", Home, cli.DEFAULT_HOME),
    ("output", Output, OutputFormat.text)))


def with_tx_options(function=None, *, keyring_backend: KeyringBackend = KeyringBackend.file):
    """A tx command: `function`'s own parameters, then TX_PARAMETERS (with `keyring_backend` as the keyring's
    default), which it gets as one TxOptions, `tx`."""
    if function is None:
        return functools.partial(with_tx_options, keyring_backend=keyring_backend)
    own = [p for p in inspect.signature(function).parameters.values() if p.name != "tx"]
    shared = [p.replace(default=keyring_backend) if p.name == "keyring_backend" else p for p in TX_PARAMETERS]

    @functools.wraps(function)
    def command(**values):
        options = TxOptions(**{p.name: values.pop(p.name) for p in shared})
        return function(**values, tx=options)

    command.__signature__ = inspect.Signature([*own, *shared])
    command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
    return command


def get_event_attribute(result, event_type: str, key: str) -> str:
    for event in result.events:
        if event.type == event_type:
            return dict(event.attributes).get(key, "")
    return ""


def get_market_params(rpc: "Client"):
    from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2
    return rpc.query(market_query_pb2.QueryParamsRequest(), market_query_pb2.QueryParamsResponse).params


def get_all_providers(rpc: "Client") -> list:
    from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2
    views, key = [], b""
    while True:
        reply = rpc.query(market_query_pb2.QueryProvidersRequest(pagination={"key": key, "limit": PAGE_LIMIT}),
                          market_query_pb2.QueryProvidersResponse)
        views.extend(reply.providers)
        key = reply.pagination.next_key
        if not key:
            return views


def format_celsius(millicelsius: int) -> str:
    return f"{millicelsius / MILLI:.1f}"


# --- market queries ----------------------------------------------------------------------------

@market_app.command("providers")
def market_providers(node: Node = DEFAULT_NODE, home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text):
    """List providers: offer, stake, heat and the effective ask the market clears them on."""
    from node.client import Client
    views = get_all_providers(Client(node))
    records = [compute_record(view) for view in views]
    if output == OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
        return
    rows = [[v.provider.address, v.provider.zone, ",".join(v.provider.models), str(v.provider.slots_per_block),
             v.provider.ask_price, v.effective_ask or "-", format_celsius(v.temperature_millicelsius),
             format_celsius(v.zone_temperature_millicelsius), v.provider.stake,
             "withdrawn" if v.withdrawn else "active"] for v in views]
    cli.show_table("providers", ["address", "zone", "models", "slots", "ask", "effective ask", "°C", "zone °C",
                                 "stake", "status"], rows)


@market_app.command("book")
def market_book(
    work: Annotated[Optional[str], typer.Option("--work", help="process or inference/<model>; default: every work.")] = None,
    node: Node = DEFAULT_NODE, home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text,
):
    """Show open orders, best bid first."""
    from chain import market
    from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2
    from node.client import Client
    rpc = Client(node)
    works = [work] if work else market.compute_works(get_market_params(rpc).models)
    orders = []
    for name in works:
        key = b""
        while True:
            reply = rpc.query(market_query_pb2.QueryBookRequest(work=name, pagination={"key": key, "limit": PAGE_LIMIT}),
                              market_query_pb2.QueryBookResponse)
            orders.extend(reply.orders)
            key = reply.pagination.next_key
            if not key:
                break
    if output == OutputFormat.json:
        typer.echo(json.dumps([compute_record(order) for order in orders], indent=2))
        return
    rows = [[str(o.id), o.work, o.owner, f"{o.remaining}/{o.slots}", o.max_price, str(o.expiry_height or "-"),
             o.task_ref or (f"process {o.process_id}" if o.process_id else "")] for o in orders]
    cli.show_table("order book", ["order", "work", "owner", "slots left", "max price", "expires", "task"], rows)


@market_app.command("clearing")
def market_clearing(
    height: Annotated[Optional[int], typer.Argument(min=1, help="Read the market as of this height; default: latest.")] = None,
    work: Annotated[Optional[str], typer.Option("--work", help="One work kind; default: every work.")] = None,
    node: Node = DEFAULT_NODE, home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text,
):
    """Show the last clearing price of each work (as of HEIGHT)."""
    from chain import market
    from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2
    from node import worker
    from node.client import Client
    rpc = Client(node)
    works = [work] if work else market.compute_works(get_market_params(rpc).models)
    clearings = []
    for name in works:
        reply = worker.query_optional(rpc, market_query_pb2.QueryClearingRequest(work=name),
                                      market_query_pb2.QueryClearingResponse, height or 0)
        if reply is not None:
            clearings.append(reply.clearing)
    if output == OutputFormat.json:
        typer.echo(json.dumps([compute_record(c) for c in clearings], indent=2))
        return
    cli.show_table("clearings" + (f" as of height {height}" if height else ""),
                   ["work", "height", "price", "matched slots"],
                   [[c.work, str(c.height), c.price, str(c.matched_slots)] for c in clearings])


# --- market transactions -----------------------------------------------------------------------

@tx_market_app.command("bid")
@with_tx_options
def tx_market_bid(
    sender: Sender,
    work: Annotated[str, typer.Argument(help="process or inference/<model>.")],
    max_price: Annotated[str, typer.Argument(help=f"Highest price per slot, e.g. 100{DENOM}.")],
    slots: Annotated[int, typer.Option("--slots", min=1, help="Slots to buy.")] = 1,
    expiry_blocks: Annotated[int, typer.Option("--expiry-blocks", min=0, help="The order expires this many blocks from now.")]
    = DEFAULT_ORDER_LIFETIME_BLOCKS,
    task_ref: Annotated[str, typer.Option("--task-ref", help="Inference work: the task this order buys.")] = "",
    *, tx: TxOptions,
):
    """Place an order; slots x max price is escrowed until it fills, expires or is cancelled."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    price = parse_amount(max_price)
    signer = tx.load_signer(sender)
    expiry = signer.rpc.status().latest_block_height + 1 + expiry_blocks
    message = market_tx_pb2.MsgBid(owner=signer.address, work=work, slots=slots, max_price=str(price),
                                   expiry_height=expiry, task_ref=task_ref)
    tx.execute(signer, [message], {DENOM: slots * price},
               describe=lambda result: {"order": get_event_attribute(result, "order_placed", "order")})


@tx_market_app.command("cancel")
@with_tx_options
def tx_market_cancel(
    sender: Sender, order_id: Annotated[int, typer.Argument(metavar="ORDER", min=1)],
    *, tx: TxOptions,
):
    """Cancel one of your orders; what is left of its escrow is refunded."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    signer = tx.load_signer(sender)
    message = market_tx_pb2.MsgCancelOrder(owner=signer.address, order_id=order_id)
    tx.execute(signer, [message], {},
               describe=lambda result: {"refund": get_event_attribute(result, "order_ended", "refund")})


@tx_market_app.command("register-provider")
@with_tx_options
def tx_market_register_provider(
    sender: Sender,
    models: Annotated[str, typer.Option("--models", help="Comma-separated models served, e.g. digits.")] = "",
    slots: Annotated[int, typer.Option("--slots", min=1, help="Slots offered per block.")] = DEFAULT_SLOTS,
    ask: Annotated[str, typer.Option("--ask", help="Asking price per slot.")] = f"{DEFAULT_ASK}{DENOM}",
    zone: Annotated[str, typer.Option("--zone", help="Thermal zone (e.g. a rack or room).")] = DEFAULT_ZONE,
    stake: Annotated[str, typer.Option("--stake", help="Stake, slashable on a missed task.")] = f"{DEFAULT_STAKE}{DENOM}",
    *, tx: TxOptions,
):
    """Offer execution slots on the market."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    message_models = [m for m in models.split(",") if m]
    ask_price, stake_amount = parse_amount(ask), parse_amount(stake)
    signer = tx.load_signer(sender)
    message = market_tx_pb2.MsgRegisterProvider(provider=signer.address, models=message_models, slots_per_block=slots,
                                                ask_price=str(ask_price), zone=zone, stake=str(stake_amount))
    tx.execute(signer, [message], {DENOM: stake_amount}, extra={"provider": signer.address})


@tx_market_app.command("report-heat")
@with_tx_options
def tx_market_report_heat(
    sender: Sender,
    temperature: Annotated[Optional[float], typer.Option("--celsius", help="Default: the host's hottest sensor.")] = None,
    power_milliwatts: cli.PowerOption = app_config.DEFAULT_MILLIWATTS,
    *, tx: TxOptions,
):
    """Report your provider's temperature and power draw."""
    from chain import heat
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    from node import sensors
    if temperature is None:
        millicelsius = sensors.read_host_millicelsius()
        if millicelsius is None:
            raise CliError("this host has no readable temperature sensor: pass --celsius")
    else:
        millicelsius = round(temperature * MILLI)
    try:
        heat.check_reading(heat.HeatReading(millicelsius, power_milliwatts))
    except heat.ReadingOutOfRange as error:
        raise CliError(f"invalid heat reading: {error}") from None
    signer = tx.load_signer(sender)
    message = market_tx_pb2.MsgReportHeat(provider=signer.address, temperature_millicelsius=millicelsius,
                                          power_milliwatts=power_milliwatts)
    tx.execute(signer, [message], {},
               extra={"temperature_millicelsius": str(millicelsius), "power_milliwatts": str(power_milliwatts)})


# --- processes ---------------------------------------------------------------------------------

@tx_process_app.command("start")
@with_tx_options
def tx_process_start(
    sender: Sender,
    max_rent: Annotated[str, typer.Argument(help="Highest rent per slot per block.")],
    escrow: Annotated[str, typer.Argument(help="Paid in; rent and memory rent are drawn from it.")],
    slots: Annotated[int, typer.Option("--slots", min=1)] = 1,
    *, tx: TxOptions,
):
    """Start a process that bids for its slots every block until its escrow runs out."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    rent, amount = parse_amount(max_rent), parse_amount(escrow)
    signer = tx.load_signer(sender)
    message = market_tx_pb2.MsgStartProcess(owner=signer.address, slots=slots, max_rent=str(rent), escrow=str(amount))
    tx.execute(signer, [message], {DENOM: amount},
               describe=lambda result: {"process": get_event_attribute(result, "process_started", "process")})


@tx_process_app.command("write")
@with_tx_options
def tx_process_write(
    sender: Sender, process_id: Annotated[int, typer.Argument(metavar="PROCESS", min=1)], key: str, value: str,
    hex_input: Annotated[bool, typer.Option("--hex", help="KEY and VALUE are hex, not text.")] = False,
    *, tx: TxOptions,
):
    """Write a key of a process's memory (memory pays rent every block)."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    message = market_tx_pb2.MsgProcessWrite(process_id=process_id, key=parse_memory_bytes(key, hex_input),
                                            value=parse_memory_bytes(value, hex_input))
    signer = tx.load_signer(sender)
    message.owner = signer.address
    tx.execute(signer, [message], {})


@tx_process_app.command("delete")
@with_tx_options
def tx_process_delete(
    sender: Sender, process_id: Annotated[int, typer.Argument(metavar="PROCESS", min=1)], key: str,
    hex_input: Annotated[bool, typer.Option("--hex", help="KEY is hex, not text.")] = False,
    *, tx: TxOptions,
):
    """Delete a key of a process's memory."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    message = market_tx_pb2.MsgProcessDelete(process_id=process_id, key=parse_memory_bytes(key, hex_input))
    signer = tx.load_signer(sender)
    message.owner = signer.address
    tx.execute(signer, [message], {})


@tx_process_app.command("top-up")
@with_tx_options
def tx_process_top_up(
    sender: Sender, process_id: Annotated[int, typer.Argument(metavar="PROCESS", min=1)], amount: str,
    *, tx: TxOptions,
):
    """Add to a process's escrow."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    value = parse_amount(amount)
    signer = tx.load_signer(sender)
    message = market_tx_pb2.MsgTopUp(owner=signer.address, process_id=process_id, amount=str(value))
    tx.execute(signer, [message], {DENOM: value},
               describe=lambda result: {"escrow": get_event_attribute(result, "process_topped_up", "escrow")})


@tx_process_app.command("stop")
@with_tx_options
def tx_process_stop(
    sender: Sender, process_id: Annotated[int, typer.Argument(metavar="PROCESS", min=1)],
    *, tx: TxOptions,
):
    """Stop a process; its memory is erased and what is left of its escrow refunded."""
    from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx_pb2
    signer = tx.load_signer(sender)
    message = market_tx_pb2.MsgStopProcess(owner=signer.address, process_id=process_id)
    tx.execute(signer, [message], {})


def query_process(
    process_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    node: Node = DEFAULT_NODE, home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text,
):
    """Show a process: slots, rent, escrow and its memory."""
    from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2
    from node.client import Client
    reply = Client(node).query(market_query_pb2.QueryProcessRequest(id=process_id), market_query_pb2.QueryProcessResponse)
    record = compute_record(reply.process)
    record["memory"] = [{"key": entry.key.hex(), "value": entry.value.hex()} for entry in reply.memory]
    if output == OutputFormat.json:
        cli.show(output, record)
        return
    cli.show(output, {k: v for k, v in record.items() if k != "memory"})
    cli.show_table("memory", ["key", "value"], [[m["key"], m["value"]] for m in record["memory"]])


# --- inference ---------------------------------------------------------------------------------

def read_input_values(path: Path) -> list[float]:
    """A JSON list of numbers, {"input": [...]}, or EZKL's {"input_data": [[...]]}."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read input {path}: {error}") from None
    if isinstance(data, dict):
        data = data.get("input", data.get("input_data", [None])[0] if isinstance(data.get("input_data"), list) else None)
    if not isinstance(data, list) or not data or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        raise CliError(f"input {path} must be a non-empty list of numbers, {{\"input\": [...]}} or {{\"input_data\": [[...]]}}")
    return [float(v) for v in data]


@infer_app.command("request")
@with_tx_options(keyring_backend=KeyringBackend.test)
def infer_request(
    sender: Annotated[str, typer.Option("--from", help="Key paying the reward.")] = "alice",
    model: Annotated[str, typer.Option("--model", help="A registered model.")] = "digits",
    input_path: Annotated[Path, typer.Option("--input", help='JSON input: a list of numbers or {"input": [...]}.')] = ...,
    reward: Annotated[str, typer.Option("--reward", help=f"Paid to the provers, e.g. 1000{DENOM}.")] = ...,
    deadline_blocks: Annotated[int, typer.Option("--deadline-blocks", min=1, help="Blocks the provers have.")]
    = DEFAULT_DEADLINE_BLOCKS,
    *, tx: TxOptions,
):
    """Request an inference; workers prove it layer by layer and are paid from the reward."""
    from chain import inference
    from chain.proto.maxwell.inference.v1 import tx_pb2 as inference_tx_pb2
    from node import txclient, worker
    from zk.instances import InstanceError, compute_quantized
    values = read_input_values(input_path)
    amount = parse_amount(reward)
    signer = tx.load_signer(sender)
    layer0 = worker.get_model(signer.rpc, model).layers[0]
    try:
        scale = int(json.loads(layer0.settings)["model_input_scales"][0])
        quantized = compute_quantized(values, scale)
        bound = inference.load_settings(layer0.settings)["input_bound"]
    except (ValueError, KeyError, IndexError, TypeError, InstanceError, inference.InvalidModelError) as error:
        raise CliError(f"cannot quantize the input for model {model!r}: {error}") from None
    for index, (value, q) in enumerate(zip(values, quantized)):
        if not -bound < q < bound:
            raise CliError(f"input {index} is {value:g}: model {model!r} takes values of magnitude below "
                           f"{bound / 2 ** scale:g} (its circuit's range at input scale {scale})")
    deadline = signer.rpc.status().latest_block_height + 1 + deadline_blocks
    message = inference_tx_pb2.MsgRequestInference(requester=signer.address, model=model, input=quantized,
                                                    reward=str(amount), deadline_height=deadline)
    try:
        tx.execute(signer, [message], {DENOM: amount}, extra={"deadline_height": str(deadline)},
                   describe=lambda result: {
                       "request_id": get_event_attribute(result, worker.REQUEST_EVENT, "request_id")})
    except txclient.TxInterrupted as error:
        raise RequestInterrupted(f"{error}, whose {worker.REQUEST_EVENT} event names the request id for "
                                 "`maxwell query inference <id>`") from None


def query_inference(
    request_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    node: Node = DEFAULT_NODE, home: Home = cli.DEFAULT_HOME, output: Output = OutputFormat.text,
):
    """Show an inference request: status, proven layers and, once complete, the verified class."""
    from chain.proto.maxwell.inference.v1 import query_pb2 as inference_query_pb2
    from node import worker
    from node.client import Client
    from zk.instances import compute_dequantized
    rpc = Client(node)
    request = rpc.query(inference_query_pb2.QueryRequestRequest(request_id=request_id),
                        inference_query_pb2.QueryRequestResponse).request
    result = rpc.query(inference_query_pb2.QueryResultRequest(request_id=request_id),
                       inference_query_pb2.QueryResultResponse).result
    model = worker.get_model(rpc, request.model)
    scale = int(json.loads(model.layers[-1].settings)["model_output_scales"][0])
    record = {
        "request_id": str(request.id), "model": request.model, "status": compute_record(result)["status"],
        "requester": request.requester, "reward": request.reward, "deadline_height": str(request.deadline_height),
        "proven_layers": f"{len(result.layers)}/{len(model.layers)}",
        "predicted_class": str(result.predicted_class) if result.outputs else None,
        "outputs": [round(v, 4) for v in compute_dequantized(result.outputs, scale)],
        "paid": f"{request.paid or 0}{DENOM}",
        "refunded": f"{int(request.reward) - int(request.paid or 0)}{DENOM}" if request.ended_height else None,
        "ended": f"at height {request.ended_height}: {request.end_reason}" if request.ended_height else None,
        "layers": [{"layer": r.layer, "prover": r.prover, "height": str(r.height), "price": f"{r.price}{DENOM}",
                    "output_hash": r.output_hash} for r in result.layers],
    }
    if output == OutputFormat.json:
        cli.show(output, record)
        return
    cli.show(output, {k: v for k, v in record.items() if k != "layers"})
    cli.show_table("proven layers", ["layer", "prover", "height", "paid"],
                   [[str(r["layer"]), r["prover"], r["height"], r["price"]] for r in record["layers"]])


# --- worker ------------------------------------------------------------------------------------

def make_worker_config(home: Path, node: str, key: str, backend: KeyringBackend, passphrase_file: Path | None,
                       models: str, slots: int, ask: str, zone: str, stake: str, circuits_dir: Path,
                       heat_millicelsius: int, power_milliwatts: int) -> "worker.WorkerConfig":
    from node import sensors, worker
    return worker.WorkerConfig(
        home=home, node=node, private_key=cli.load_private_key(home, backend, passphrase_file, key),
        offer=worker.Offer(models=tuple(m for m in models.split(",") if m), slots_per_block=slots,
                           ask_price=parse_amount(ask), zone=zone, stake=parse_amount(stake)),
        circuits_dir=circuits_dir, heat_sensor=sensors.make_heat_sensor(heat_millicelsius, power_milliwatts),
    )


WorkerKey = Annotated[str, typer.Option("--key", help="Key of the provider (pays fees, receives payments).")]
Models = Annotated[str, typer.Option("--models", help="Comma-separated models to serve.")]
Slots = Annotated[int, typer.Option("--slots", min=1, help="Slots offered per block.")]
Ask = Annotated[str, typer.Option("--ask", help="Asking price per slot (before heat).")]
Zone = Annotated[str, typer.Option("--zone", help="Thermal zone of this host.")]
Stake = Annotated[str, typer.Option("--stake", help="Stake to register with.")]
CircuitsDir = Annotated[Path, typer.Option("--circuits-dir", help="Where the models' circuits are.")]


@worker_app.command("start")
def worker_start(
    key: WorkerKey, models: Models = "digits", slots: Slots = DEFAULT_SLOTS, ask: Ask = f"{DEFAULT_ASK}{DENOM}",
    zone: Zone = DEFAULT_ZONE, stake: Stake = f"{DEFAULT_STAKE}{DENOM}", circuits_dir: CircuitsDir = app_config.DEFAULT_CIRCUITS_DIR,
    heat_millicelsius: cli.HeatOption = app_config.DEFAULT_MILLICELSIUS, power_milliwatts: cli.PowerOption = app_config.DEFAULT_MILLIWATTS,
    node: Node = DEFAULT_NODE, keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None, home: Home = cli.DEFAULT_HOME,
    log_level: cli.LogLevel = "info",
    log_format: cli.LogFormat = "plain",
):
    """Run the worker daemon until interrupted: register, report heat, prove assigned layers."""
    from node import worker
    cli.configure_logging(log_level, log_format)
    config = make_worker_config(home, node, key, keyring_backend, keyring_passphrase_file, models, slots, ask, zone,
                                stake, circuits_dir, heat_millicelsius, power_milliwatts)
    worker.run(config)


@worker_app.command("dev")
def worker_dev(
    key: WorkerKey = "alice", models: Models = "digits", slots: Slots = DEFAULT_SLOTS,
    ask: Ask = f"{DEFAULT_ASK}{DENOM}", zone: Zone = DEFAULT_ZONE, stake: Stake = f"{DEFAULT_STAKE}{DENOM}",
    circuits_dir: CircuitsDir = app_config.DEFAULT_CIRCUITS_DIR,
    rpc: Annotated[str, typer.Option("--rpc", help="Listen address of the CometBFT RPC.")] = app_config.DEFAULT_RPC_ADDRESS,
    block_time: Annotated[str, typer.Option("--block-time", help="Time between blocks.")] = "1s",
    grpc: cli.GrpcOption = app_config.DEFAULT_GRPC_ADDRESS,
    rest_address: cli.RestOption = app_config.DEFAULT_REST_ADDRESS,
    rest_cors: cli.RestCorsOption = "off",
    keep_recent: cli.KeepRecentOption = app_config.DEFAULT_KEEP_RECENT,
    minimum_gas_prices: cli.MinimumGasPrices = "",
    faucet_key: cli.FaucetOption = None,
    faucet_amount: cli.FaucetAmountOption = f"{app_config.DEFAULT_FAUCET_UJOULE}{DENOM}",
    heat_millicelsius: cli.HeatOption = app_config.DEFAULT_MILLICELSIUS, power_milliwatts: cli.PowerOption = app_config.DEFAULT_MILLIWATTS,
    keyring_backend: Backend = KeyringBackend.test, keyring_passphrase_file: PassphraseFile = None,
    home: Home = cli.DEFAULT_HOME,
    log_level: cli.LogLevel = "info",
    log_format: cli.LogFormat = "plain",
):
    """The dev chain and one local worker in one process (what `make dev` runs)."""
    from node import devchain, worker
    block_time_ms = cli.compute_duration_ms(block_time)
    cli.check_listen_addresses(grpc, rest_address, rest_cors)
    dev_faucet = cli.make_faucet(home, faucet_key, faucet_amount, rpc, rest_address)
    cli.configure_logging(log_level, log_format)
    node = "http://" + rpc.split("://", 1)[-1]
    config = make_worker_config(home, node, key, keyring_backend, keyring_passphrase_file, models, slots, ask, zone,
                                stake, circuits_dir, heat_millicelsius, power_milliwatts)
    stopping = threading.Event()
    thread = threading.Thread(target=worker.run_after_chain_start, args=(config, stopping), name="worker", daemon=True)
    thread.start()
    try:
        devchain.run(str(home), rpc=rpc, block_time_ms=block_time_ms, heat_sensor=config.heat_sensor, grpc=grpc,
                     rest_address=rest_address, rest_cors=rest_cors, keep_recent=keep_recent, faucet=dev_faucet,
                     minimum_gas_price=cli.parse_gas_price(minimum_gas_prices, "minimum gas price"))
    finally:
        stopping.set()
        thread.join(timeout=30)


# --- mounting ----------------------------------------------------------------------------------

def mount() -> None:
    """Adds these commands to node.cli's app (see node.main), and their errors to its one-line errors."""
    cli.EXPECTED_ERRORS["node.worker"] = ("WorkerError",)
    query_app, tx_app = cli.query_app, cli.tx_app
    cli.GROUPS.update(market=market_app, infer=infer_app, worker=worker_app)
    tx_app.add_typer(tx_market_app, name="market")
    tx_app.add_typer(tx_process_app, name="process")
    query_app.command("process")(query_process)
    query_app.command("inference")(query_inference)

