"""The worker daemon: a provider on the compute market that proves the inference layers assigned to it.

It registers as a provider (or updates its offer), reports its host's heat every few blocks, and
follows the chain: a websocket subscription to NewBlock wakes it up, and a `status` poll is the
fallback when the socket is down. For every new height it reads `block_results`, picks the
`task_assigned` events naming this provider, and proves and submits those layers in order.

The market turns heat into price: the reports raise this provider's effective ask when its host is
hot and, through the zone discount, lower it when a neighbour in its zone is hot (chain.heat).

Restarts: `<home>/worker/state.json` (written atomically) holds the last height scanned, the tasks
seen but not yet submitted, and every submission (keyed by task and assignment height). A
submission is recorded, signed bytes included, before it is broadcast; after a restart an
unconfirmed one is re-broadcast byte for byte, so it can be included at most once.
"""

import asyncio
import base64
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from google.protobuf.message import DecodeError

from chain import crypto, heat, market
from chain.errors import InvalidSequenceError, NotFoundError
from chain.proto.cosmos.auth.v1beta1 import auth_pb2, query_pb2 as auth_query_pb2
from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2, tx_pb2 as market_tx_pb2
from chain.tx import TxParams, compute_required_fee, compute_tx_hash, sign_tx
from node import client

log = logging.getLogger("maxwell.worker")

STATE_DIR = "worker"
STATE_FILE = "state.json"
PK_DIR = "pk"
DEFAULT_GAS = 200_000
SUBMIT_GAS = 4_000_000
HEAT_INTERVAL_BLOCKS = 5
POLL_INTERVAL_SECONDS = 1.0
TX_TIMEOUT_SECONDS = 30.0
RECONNECT_SECONDS = 2.0
NEW_BLOCK_QUERY = "tm.event='NewBlock'"
ACCOUNT_QUERY_PATH = "/cosmos.auth.v1beta1.Query/Account"
PROVIDER_QUERY_PATH = "/maxwell.market.v1.Query/Provider"
ASSIGNMENT_QUERY_PATH = "/maxwell.market.v1.Query/Assignment"
TASK_ASSIGNED_EVENT = "task_assigned"


class WorkerError(Exception):
    pass


class QueryFailed(WorkerError):
    def __init__(self, path: str, response: client.QueryResponse):
        super().__init__(f"query {path} failed: code {response.code} ({response.codespace}): {response.log}")
        self.code = response.code


class AccountNotFound(WorkerError):
    pass


class TxRejected(WorkerError):
    """The chain refused a transaction, in CheckTx or in its block; the message is the chain's reason."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class MalformedState(WorkerError):
    pass


# --- chain access ------------------------------------------------------------------------------

def query(rpc: client.Client, path: str, request, response_class, height: int = 0):
    response = rpc.abci_query(path, request.SerializeToString(), height=height)
    if response.code:
        raise QueryFailed(path, response)
    try:
        return response_class.FromString(response.value)
    except DecodeError:
        raise client.InvalidResponse(f"query {path}: the answer is not a {response_class.DESCRIPTOR.name}") from None


def query_optional(rpc: client.Client, path: str, request, response_class):
    """The answer, or None when the chain says the record does not exist."""
    try:
        return query(rpc, path, request, response_class)
    except QueryFailed as error:
        if error.code == NotFoundError.code or _is_market_not_found(error.code):
            return None
        raise


def _is_market_not_found(code: int) -> bool:
    return code in (market.ProviderNotFoundError.code, market.AssignmentNotFoundError.code)


def get_account(rpc: client.Client, address: str) -> auth_pb2.BaseAccount:
    reply = query_optional(rpc, ACCOUNT_QUERY_PATH, auth_query_pb2.QueryAccountRequest(address=address),
                           auth_query_pb2.QueryAccountResponse)
    if reply is None:
        raise AccountNotFound(f"account {address} not found: it has never received tokens")
    account = auth_pb2.BaseAccount()
    if not reply.account.Unpack(account):
        raise WorkerError(f"account {address} is a {reply.account.type_url}, not a BaseAccount")
    return account


@dataclass
class Signer:
    """One key signing sequential transactions; the sequence is re-read when the chain disagrees."""

    rpc: client.Client
    private_key: bytes
    address: str
    chain_id: str
    account_number: int = 0
    sequence: int = 0


def load_signer(rpc: client.Client, private_key: bytes) -> Signer:
    address = crypto.encode_address(crypto.compute_address(crypto.compute_public_key(private_key)))
    signer = Signer(rpc, private_key, address, rpc.status().chain_id)
    process_account_refresh(signer)
    return signer


def process_account_refresh(signer: Signer) -> None:
    account = get_account(signer.rpc, signer.address)
    signer.account_number, signer.sequence = account.account_number, account.sequence


def compute_signed_tx(signer: Signer, messages: list, gas: int, fee: int | None = None, memo: str = "") -> bytes:
    return sign_tx(signer.private_key, messages, chain_id=signer.chain_id, account_number=signer.account_number,
                   sequence=signer.sequence, fee=compute_required_fee(gas, TxParams()) if fee is None else fee,
                   gas_limit=gas, memo=memo)


def process_broadcast(signer: Signer, tx: bytes) -> client.BroadcastResult:
    """CheckTx the signed bytes; a pass consumes the signer's sequence."""
    checked = signer.rpc.broadcast_tx_sync(tx)
    if checked.code:
        raise TxRejected(f"tx rejected: code {checked.code} ({checked.codespace}): {checked.log}", checked.code)
    signer.sequence += 1
    return checked


def process_tx_result(signer: Signer, tx_hash: bytes, timeout: float = TX_TIMEOUT_SECONDS) -> client.TxResult:
    result = signer.rpc.wait_for_tx(tx_hash, timeout)
    if result.code:
        raise TxRejected(f"tx {tx_hash.hex().upper()} failed in block {result.height}: code {result.code} "
                         f"({result.codespace}): {result.log}", result.code)
    return result


def execute_messages(signer: Signer, messages: list, gas: int = DEFAULT_GAS, fee: int | None = None,
                     memo: str = "", wait: bool = True) -> tuple[bytes, client.TxResult | None]:
    """Sign, broadcast and (with `wait`) wait for inclusion; one retry after a sequence mismatch."""
    tx = compute_signed_tx(signer, messages, gas, fee, memo)
    try:
        checked = process_broadcast(signer, tx)
    except TxRejected as error:
        if error.code != InvalidSequenceError.code:
            raise
        process_account_refresh(signer)
        tx = compute_signed_tx(signer, messages, gas, fee, memo)
        checked = process_broadcast(signer, tx)
    return checked.hash, process_tx_result(signer, checked.hash) if wait else None


def get_block_events(rpc: client.Client, height: int) -> tuple[client.Event, ...]:
    """The FinalizeBlock events (begin/end block) of a height: where the market's clearing reports."""
    results = rpc.call("block_results", {"height": str(height)})
    return client.decode_events(results.get("finalize_block_events") or [])


def compute_assigned_tasks(events, provider: str) -> list[str]:
    return [attributes["task"] for attributes in (dict(e.attributes) for e in events if e.type == TASK_ASSIGNED_EVENT)
            if attributes.get("provider") == provider and attributes.get("task")]


# --- provider and heat -------------------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    models: tuple[str, ...]
    slots_per_block: int
    ask_price: int
    zone: str
    stake: int


def get_provider_view(rpc: client.Client, address: str) -> market_query_pb2.ProviderView | None:
    reply = query_optional(rpc, PROVIDER_QUERY_PATH, market_query_pb2.QueryProviderRequest(address=address),
                           market_query_pb2.QueryProviderResponse)
    return None if reply is None else reply.provider


def is_offer_current(provider, offer: Offer) -> bool:
    return (tuple(provider.models) == offer.models and provider.slots_per_block == offer.slots_per_block
            and provider.ask_price == str(offer.ask_price) and provider.zone == offer.zone)


def process_registration(signer: Signer, offer: Offer) -> market_query_pb2.ProviderView:
    """Register as a provider, or bring a registered provider's offer up to date."""
    view = get_provider_view(signer.rpc, signer.address)
    if view is None:
        message = market_tx_pb2.MsgRegisterProvider(
            provider=signer.address, models=list(offer.models), slots_per_block=offer.slots_per_block,
            ask_price=str(offer.ask_price), zone=offer.zone, stake=str(offer.stake))
        execute_messages(signer, [message])
        log.info("registered provider %s: %s, %d slots/block at %d ujoule, zone %s, stake %d ujoule", signer.address,
                 ",".join(offer.models), offer.slots_per_block, offer.ask_price, offer.zone, offer.stake)
    elif view.provider.unbonding_height:
        raise WorkerError(f"provider {signer.address} is unbonding (until height {view.provider.unbonding_height})")
    elif not is_offer_current(view.provider, offer):
        message = market_tx_pb2.MsgUpdateProvider(
            provider=signer.address, models=list(offer.models), slots_per_block=offer.slots_per_block,
            ask_price=str(offer.ask_price), zone=offer.zone)
        execute_messages(signer, [message])
        log.info("updated provider %s: %s, %d slots/block at %d ujoule, zone %s", signer.address,
                 ",".join(offer.models), offer.slots_per_block, offer.ask_price, offer.zone)
    return get_provider_view(signer.rpc, signer.address)


def process_heat_report(signer: Signer, reading: heat.HeatReading) -> market_query_pb2.ProviderView:
    message = market_tx_pb2.MsgReportHeat(provider=signer.address, temperature_millicelsius=reading.temperature_millicelsius,
                                          power_milliwatts=reading.power_milliwatts)
    execute_messages(signer, [message])
    view = get_provider_view(signer.rpc, signer.address)
    log.info("heat %.1f °C (zone %.1f °C): effective ask %s ujoule for a stated ask of %s",
             view.temperature_millicelsius / 1000, view.zone_temperature_millicelsius / 1000,
             view.effective_ask or "none (withdrawn)", view.provider.ask_price)
    return view


# --- persistent state --------------------------------------------------------------------------

@dataclass
class WorkerState:
    height: int = 0
    pending: list[str] = field(default_factory=list)
    submitted: dict[str, dict] = field(default_factory=dict)


def get_state_path(home: Path) -> Path:
    return Path(home) / STATE_DIR / STATE_FILE


def read_state(path: Path) -> WorkerState:
    if not path.exists():
        return WorkerState()
    try:
        data = json.loads(path.read_text())
        return WorkerState(height=int(data["height"]), pending=[str(t) for t in data["pending"]],
                           submitted={str(k): dict(v) for k, v in data["submitted"].items()})
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise MalformedState(f"worker state {path} is unreadable ({error}); move it away to rescan") from None


def write_state(path: Path, state: WorkerState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as file:
        json.dump({"height": state.height, "pending": state.pending, "submitted": state.submitted}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def compute_submission_key(task_ref: str, assigned_height: int) -> str:
    """A task missed at its deadline goes back to the book and may come back to us: key by assignment."""
    return f"{task_ref}@{assigned_height}"


# --- following the chain -----------------------------------------------------------------------

class BlockNotifier:
    """Sets `event` on every NewBlock from the node's websocket; reconnects until stopped."""

    def __init__(self, node: str, event: threading.Event):
        self.url = client.compute_http_url(node).rstrip("/") + "/websocket"
        self.event = event
        self.connected = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._follow(),),
                                       name="worker-websocket", daemon=True)
        self.stopping: asyncio.Event | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout=5)

    async def _follow(self) -> None:
        self.stopping = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            while not self.stopping.is_set():
                try:
                    await self._listen(session)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                    if self.connected:
                        log.warning("websocket dropped (%s); polling status until it is back", error)
                self.connected = False
                try:
                    await asyncio.wait_for(self.stopping.wait(), RECONNECT_SECONDS)
                except asyncio.TimeoutError:
                    pass

    async def _listen(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self.url, heartbeat=30) as ws:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"query": NEW_BLOCK_QUERY}})
            self.connected = True
            log.info("subscribed to new blocks at %s", self.url)
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                while True:
                    receive = asyncio.ensure_future(ws.receive())
                    done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if stop in done:
                        receive.cancel()
                        return
                    message = receive.result()
                    if message.type != aiohttp.WSMsgType.TEXT:
                        raise aiohttp.ClientError(f"websocket closed ({message.type.name})")
                    self.event.set()
            finally:
                stop.cancel()


def encode_tx(tx: bytes) -> str:
    return base64.b64encode(tx).decode()


def decode_tx(text: str) -> bytes:
    return base64.b64decode(text)
