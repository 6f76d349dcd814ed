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
import hashlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import aiohttp

from chain import heat, market
from chain.errors import NotFoundError
from chain.inference import MalformedTaskRef, parse_task_ref
from chain.proto.maxwell.inference.v1 import query_pb2 as inference_query_pb2, tx_pb2 as inference_tx_pb2
from chain.proto.maxwell.market.v1 import query_pb2 as market_query_pb2, tx_pb2 as market_tx_pb2
from chain.tx import compute_tx_hash
from node import client, metrics, sensors, txclient
from node.app_config import DEFAULT_CIRCUITS_DIR
from zk.artifacts import ArtifactError, Manifest, load_manifest
from zk.instances import compute_dequantized
from zk.prove import ProvingError, prove_circuit

log = logging.getLogger("maxwell.worker")

STATE_DIR = "worker"
STATE_FILE = "state.json"
PK_DIR = "pk"
SUBMIT_GAS = 600_000
HEAT_INTERVAL_BLOCKS = 5
POLL_INTERVAL_SECONDS = 1.0
RECONNECT_SECONDS = 2.0
NEW_BLOCK_QUERY = "tm.event='NewBlock'"
TASK_ASSIGNED_EVENT = "task_assigned"
NOT_FOUND_ERRORS = {(e.codespace, e.code) for e in (
    NotFoundError, market.ProviderNotFoundError, market.AssignmentNotFoundError)}
REQUEST_EVENT = "inference_requested"


class WorkerError(Exception):
    pass


class MalformedState(WorkerError):
    pass


class MalformedTask(WorkerError):
    pass


class ModelMismatch(WorkerError):
    pass


# --- chain access ------------------------------------------------------------------------------

def query_optional(rpc: client.Client, request, response_class, height: int = 0):
    """The answer, or None when the chain says the record does not exist."""
    return rpc.query_optional(request, response_class, NOT_FOUND_ERRORS, height)


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
    reply = query_optional(rpc, market_query_pb2.QueryProviderRequest(address=address),
                           market_query_pb2.QueryProviderResponse)
    return None if reply is None else reply.provider


def is_offer_current(provider, offer: Offer) -> bool:
    return (tuple(provider.models) == offer.models and provider.slots_per_block == offer.slots_per_block
            and provider.ask_price == str(offer.ask_price) and provider.zone == offer.zone)


def process_registration(signer: txclient.Signer, offer: Offer) -> market_query_pb2.ProviderView:
    """Register as a provider, or bring a registered provider's offer up to date."""
    view = get_provider_view(signer.rpc, signer.address)
    if view is None:
        message = market_tx_pb2.MsgRegisterProvider(
            provider=signer.address, models=list(offer.models), slots_per_block=offer.slots_per_block,
            ask_price=str(offer.ask_price), zone=offer.zone, stake=str(offer.stake))
        txclient.execute_messages(signer, [message])
        log.info("registered provider %s: %s, %d slots/block at %d ujoule, zone %s, stake %d ujoule", signer.address,
                 ",".join(offer.models), offer.slots_per_block, offer.ask_price, offer.zone, offer.stake)
    elif view.provider.unbonding_height:
        raise WorkerError(f"provider {signer.address} is unbonding (until height {view.provider.unbonding_height})")
    elif not is_offer_current(view.provider, offer):
        message = market_tx_pb2.MsgUpdateProvider(
            provider=signer.address, models=list(offer.models), slots_per_block=offer.slots_per_block,
            ask_price=str(offer.ask_price), zone=offer.zone)
        txclient.execute_messages(signer, [message])
        log.info("updated provider %s: %s, %d slots/block at %d ujoule, zone %s", signer.address,
                 ",".join(offer.models), offer.slots_per_block, offer.ask_price, offer.zone)
    return get_provider_view(signer.rpc, signer.address)


def process_heat_report(signer: txclient.Signer, reading: heat.HeatReading) -> market_query_pb2.ProviderView:
    message = market_tx_pb2.MsgReportHeat(provider=signer.address, temperature_millicelsius=reading.temperature_millicelsius,
                                          power_milliwatts=reading.power_milliwatts)
    txclient.execute_messages(signer, [message])
    return get_provider_view(signer.rpc, signer.address)


def log_heat(view: market_query_pb2.ProviderView, previous_ask: str | None) -> None:
    """At info only when the heat moved the price this worker asks; at debug otherwise."""
    level = logging.INFO if view.effective_ask != previous_ask else logging.DEBUG
    log.log(level, "heat %.1f °C (zone %.1f °C): effective ask %s ujoule for a stated ask of %s",
            view.temperature_millicelsius / 1000, view.zone_temperature_millicelsius / 1000,
            view.effective_ask or "none (withdrawn)", view.provider.ask_price)


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


# --- the daemon --------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerConfig:
    home: Path
    node: str
    private_key: bytes
    offer: Offer
    circuits_dir: Path = DEFAULT_CIRCUITS_DIR
    heat_sensor: Callable[[], heat.HeatReading] = field(default=sensors.make_heat_sensor())
    heat_interval_blocks: int = HEAT_INTERVAL_BLOCKS


@dataclass
class Worker:
    config: WorkerConfig
    signer: txclient.Signer
    manifests: dict[str, Manifest]
    state_path: Path
    state: WorkerState
    checked_models: set[str] = field(default_factory=set)
    last_heat_height: int = 0
    last_effective_ask: str | None = None


def load_manifests(circuits_dir: Path, models: tuple[str, ...]) -> dict[str, Manifest]:
    try:
        return {model: load_manifest(Path(circuits_dir) / model) for model in models}
    except ArtifactError as error:
        raise WorkerError(f"cannot serve the models: {error}") from None


def check_model(model, manifest: Manifest) -> None:
    """The chain's vks must be the circuits we prove with, or every proof would be rejected."""
    if len(model.layers) != len(manifest.layers):
        raise ModelMismatch(f"model {model.name}: {len(model.layers)} layers on chain, {len(manifest.layers)} here")
    for index, (layer, name) in enumerate(zip(model.layers, manifest.layers)):
        if hashlib.sha256(layer.vk).hexdigest() != manifest.circuits[name].vk_sha256:
            raise ModelMismatch(f"model {model.name}: layer {index}'s vk on chain is not {manifest.path.parent}/{name}'s")


def get_model(rpc: client.Client, name: str):
    reply = query_optional(rpc, inference_query_pb2.QueryModelRequest(name=name), inference_query_pb2.QueryModelResponse)
    if reply is None:
        raise ModelMismatch(f"model {name!r} is not registered on this chain")
    return reply.model


def compute_layer_input(rpc: client.Client, request, layer: int, manifest: Manifest) -> list[float]:
    """Layer 0 reads the request input, layer i the outputs layer i-1 was proven with."""
    if layer == 0:
        return compute_dequantized(request.input, manifest.circuits[manifest.layers[0]].input_scale)
    result = rpc.query(inference_query_pb2.QueryResultRequest(request_id=request.id),
                       inference_query_pb2.QueryResultResponse).result
    previous = next((r for r in result.layers if r.layer == layer - 1), None)
    if previous is None:
        raise MalformedTask(f"request {request.id}: layer {layer - 1} is not proven yet")
    return compute_dequantized(previous.outputs, manifest.circuits[manifest.layers[layer - 1]].output_scale)


def process_new_heights(w: Worker, latest: int) -> None:
    for height in range(w.state.height + 1, latest + 1):
        for task_ref in compute_assigned_tasks(get_block_events(w.signer.rpc, height), w.signer.address):
            if task_ref not in w.state.pending:
                log.info("height %d: task %s assigned to us", height, task_ref)
                w.state.pending.append(task_ref)
        w.state.height = height
    write_state(w.state_path, w.state)


def process_task(w: Worker, task_ref: str) -> None:
    """Prove and submit one assigned layer, unless it is gone, ours no more, or already submitted."""
    rpc = w.signer.rpc
    reply = query_optional(rpc, market_query_pb2.QueryAssignmentRequest(task_ref=task_ref),
                           market_query_pb2.QueryAssignmentResponse)
    if reply is None or reply.assignment.provider != w.signer.address:
        log.info("task %s is no longer assigned to us; skipping it", task_ref)
        return
    assignment = reply.assignment
    key = compute_submission_key(task_ref, assignment.assigned_height)
    if key in w.state.submitted:
        return
    request_id, layer = parse_task_ref(task_ref)
    request = rpc.query(inference_query_pb2.QueryRequestRequest(request_id=request_id),
                        inference_query_pb2.QueryRequestResponse).request
    manifest = w.manifests.get(request.model)
    if manifest is None:
        raise ModelMismatch(f"task {task_ref} is for model {request.model!r}, which this worker does not serve")
    if request.model not in w.checked_models:
        check_model(get_model(rpc, request.model), manifest)
        w.checked_models.add(request.model)
    if layer >= len(manifest.layers):
        raise MalformedTask(f"task {task_ref}: model {request.model} has {len(manifest.layers)} layers")
    values = compute_layer_input(rpc, request, layer, manifest)
    log.info("task %s: proving layer %d of %s (deadline height %d, price %s ujoule)", task_ref, layer, request.model,
             assignment.deadline_height, assignment.price)
    started = time.monotonic()
    proof = prove_circuit(manifest.circuits[manifest.layers[layer]], values, get_pk_dir(w.config.home))
    metrics.WORKER_PROOFS.inc()
    metrics.WORKER_LAYER_SECONDS.observe(time.monotonic() - started)
    log.info("task %s: proved in %.1f s (%d bytes, max error %.2g)", task_ref, time.monotonic() - started,
             len(proof.proof), proof.max_error)
    message = inference_tx_pb2.MsgSubmitInference(prover=w.signer.address, request_id=request_id, layer=layer,
                                                   outputs=list(proof.outputs), proof=proof.proof)
    process_submission(w, key, message)


def process_submission(w: Worker, key: str, message) -> None:
    """Record each signed tx, then broadcast it; a CheckTx sequence mismatch (never included) is re-signed."""

    def record(tx: bytes) -> None:
        w.state.submitted[key] = {"hash": compute_tx_hash(tx).hex().upper(), "tx": encode_tx(tx)}
        write_state(w.state_path, w.state)

    try:
        _, result = txclient.execute_messages(w.signer, [message], SUBMIT_GAS, on_signed=record)
    except txclient.TxRejected as error:
        process_outcome(w, key, None, error)
        return
    process_outcome(w, key, result, None)


def process_confirmation(w: Worker, key: str) -> None:
    try:
        result = txclient.wait_for_inclusion(w.signer.rpc, bytes.fromhex(w.state.submitted[key]["hash"]))
    except txclient.TxRejected as error:
        process_outcome(w, key, None, error)
        return
    process_outcome(w, key, result, None)


def process_outcome(w: Worker, key: str, result: client.TxResult | None, error: txclient.TxRejected | None) -> None:
    record = w.state.submitted[key]
    record.pop("tx", None)
    if error is not None:
        record["rejected"] = str(error)
        log.warning("task %s: the chain rejected our proof: %s", key, error)
    else:
        record["height"] = result.height
        paid = next((dict(e.attributes).get("price") for e in result.events if e.type == "task_proven"), "?")
        if paid.isdigit():
            metrics.WORKER_EARNINGS.inc(int(paid))
        completed = next((dict(e.attributes) for e in result.events if e.type == "inference_completed"), None)
        log.info("task %s: verified in block %d, paid %s ujoule%s", key, result.height, paid,
                 f"; request complete, class {completed.get('predicted_class')}" if completed else "")
    write_state(w.state_path, w.state)


def process_unconfirmed(w: Worker) -> None:
    """After a restart: a submission recorded but not confirmed is looked up, else re-sent byte for byte."""
    for key, record in list(w.state.submitted.items()):
        if "tx" not in record:
            continue
        tx_hash = bytes.fromhex(record["hash"])
        result = w.signer.rpc.tx(tx_hash)
        if result is None:
            log.info("task %s: re-sending the submission recorded before the restart", key)
            checked = w.signer.rpc.broadcast_tx_sync(decode_tx(record["tx"]))
            if checked.code and "already" not in checked.log:
                process_outcome(w, key, None, txclient.compute_check_tx_error(checked))
                continue
            process_confirmation(w, key)
        elif result.code:
            process_outcome(w, key, None, txclient.compute_block_error(result))
        else:
            process_outcome(w, key, result, None)
    txclient.process_account_refresh(w.signer)


def process_heat_if_due(w: Worker, height: int) -> None:
    if height - w.last_heat_height < w.config.heat_interval_blocks:
        return
    view = process_heat_report(w.signer, w.config.heat_sensor())
    log_heat(view, w.last_effective_ask)
    w.last_heat_height, w.last_effective_ask = height, view.effective_ask


def process_pending(w: Worker) -> None:
    while w.state.pending:
        task_ref = w.state.pending[0]
        try:
            process_task(w, task_ref)
        except (ProvingError, ArtifactError, ModelMismatch, MalformedTask, MalformedTaskRef, client.QueryFailed) as error:
            log.error("task %s: cannot prove it: %s", task_ref, error)
        w.state.pending.remove(task_ref)
        write_state(w.state_path, w.state)


def get_pk_dir(home: Path) -> Path:
    return Path(home) / STATE_DIR / PK_DIR


def start_worker(config: WorkerConfig) -> Worker:
    rpc = client.Client(config.node)
    signer = txclient.load_signer(rpc, config.private_key)
    manifests = load_manifests(config.circuits_dir, config.offer.models)
    state_path = get_state_path(config.home)
    w = Worker(config, signer, manifests, state_path, read_state(state_path))
    view = process_registration(signer, config.offer)
    if w.state.height == 0:
        w.state.height = view.provider.registered_height - 1
    process_unconfirmed(w)
    return w


def run(config: WorkerConfig, stopping: threading.Event | None = None) -> None:
    """Follow the chain until `stopping` is set (by default: until SIGINT/SIGTERM)."""
    if stopping is None:
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
    new_block = threading.Event()
    notifier = BlockNotifier(config.node, new_block)
    w = start_worker(config)
    log.info("worker %s serving %s from height %d", w.signer.address, ",".join(config.offer.models), w.state.height + 1)
    notifier.start()
    try:
        while not stopping.is_set():
            try:
                latest = w.signer.rpc.status().latest_block_height
                process_new_heights(w, latest)
                process_heat_if_due(w, latest)
                process_pending(w)
            except client.ClientError as error:
                log.warning("%s; retrying", error)
                stopping.wait(POLL_INTERVAL_SECONDS)
            new_block.wait(POLL_INTERVAL_SECONDS)
            new_block.clear()
    finally:
        notifier.stop()
        log.info("worker stopped at height %d", w.state.height)


def run_after_chain_start(config: WorkerConfig, stopping: threading.Event) -> None:
    """For a worker next to a dev chain in one process: wait for the RPC, then run."""
    rpc = client.Client(config.node)
    while not stopping.is_set():
        try:
            if rpc.status().latest_block_height >= 1:
                break
        except client.ClientError:
            pass
        stopping.wait(POLL_INTERVAL_SECONDS)
    if stopping.is_set():
        return
    try:
        run(config, stopping)
    except (WorkerError, client.ClientError) as error:
        log.error("worker stopped: %s", error)
