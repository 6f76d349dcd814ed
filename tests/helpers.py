"""What the tests (and the benchmarks) share: funded accounts and signed txs, the real App driven block by
block, reference vectors, the `maxwell` CLI and dev chain, a small real ABCI app. Fixtures are in conftest.py.
"""

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import plyvel
import pytest
from hypothesis import strategies as st
from google.protobuf.timestamp_pb2 import Timestamp
from typer.testing import CliRunner

from google.protobuf import json_format

from chain import auth, bank, crypto, heat, inference, market, process, staking, validators
from chain import app as registry
from chain.app import App
from chain.errors import TxError
from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci
from chain.proto.cosmos.crypto.ed25519 import keys_pb2 as ed25519_keys
from chain.proto.cosmos.staking.v1beta1 import query_pb2 as staking_query
from chain.proto.cosmos.staking.v1beta1 import staking_pb2
from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx
from chain.proto.cosmos.tx.v1beta1 import tx_pb2 as cosmos_tx
from chain.proto.maxwell.inference.v1 import inference_pb2
from chain.proto.maxwell.inference.v1 import query_pb2 as inference_query
from chain.proto.maxwell.inference.v1 import tx_pb2 as inference_tx
from chain.proto.maxwell.market.v1 import query_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.crypto import keys_pb2 as crypto_keys
from chain.proto.tendermint.types import validator_pb2
from chain.sdktypes import encode_sdk_json, format_dec, parse_dec_text
from chain.state import GasMeter, GasParams, MessageHandler, State, get_messages
from chain.tx import compute_type_url, pack_any, sign_tx
from node import client, privval
from node.devchain import DevChain, create_genesis_doc
from node.main import app as cli_app
from zk.instances import compute_quantized
from zk.verify import ModelVerifier
from ibc.tendermint import compute_consensus_address

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "vectors"
CIRCUITS = REPO / "circuits"
DIGITS = CIRCUITS / "digits"
CHAIN_ID = "maxwell-test-1"
GENESIS_TIME = Timestamp(seconds=1_700_000_000)
INITIAL_BALANCE = 10**12


# --- accounts, txs and the App ---------------------------------------------------------------------

@dataclass
class Account:
    name: str
    private_key: bytes
    public_key: bytes
    address: bytes
    account_number: int
    sequence: int = 0

    @property
    def bech32(self) -> str:
        return crypto.encode_address(self.address)


def make_account(name: str, account_number: int) -> Account:
    private_key = (int.from_bytes(name.encode().ljust(8, b"\0"), "big") + 1).to_bytes(32, "big")
    public_key = crypto.compute_public_key(private_key)
    return Account(name, private_key, public_key, crypto.compute_address(public_key), account_number)


def make_app_state(accounts: list[Account], amount: int = INITIAL_BALANCE) -> dict:
    state = {"auth": auth.compute_default_genesis(), "bank": bank.compute_default_genesis()}
    state["bank"]["balances"] = [
        {"address": a.bech32, "coins": [{"denom": "ujoule", "amount": str(amount)}]} for a in accounts
    ]
    return state


def init_app(app: App, accounts: list[Account]) -> bytes:
    request = abci.RequestInitChain(
        time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1,
        app_state_bytes=json.dumps(make_app_state(accounts)).encode(),
    )
    return app.init_chain(request).app_hash


def finalize(app: App, height: int, txs: list[bytes]) -> abci.ResponseFinalizeBlock:
    return app.finalize_block(
        abci.RequestFinalizeBlock(txs=txs, height=height, time=Timestamp(seconds=GENESIS_TIME.seconds + height))
    )


def send(sender: Account, recipient: bytes | str, amount: int | str, *, fee: int = 5000, gas: int = 200_000,
         chain_id: str = CHAIN_ID, sequence: int | None = None, denom: str = "ujoule") -> bytes:
    to = recipient if isinstance(recipient, str) else crypto.encode_address(recipient)
    message = bank_tx.MsgSend(from_address=sender.bech32, to_address=to, amount=[{"denom": denom, "amount": str(amount)}])
    return sign_tx(
        sender.private_key, [message], chain_id=chain_id, account_number=sender.account_number,
        sequence=sender.sequence if sequence is None else sequence, fee=fee, gas_limit=gas,
    )


def total_balances(app: App) -> int:
    prefix = bytes((bank.BALANCE,))
    return sum(int(v) for _, v in app.store.iterate(bank.STORE, prefix, bytes((bank.BALANCE + 1,))))


def supply(app: App) -> int:
    return bank.get_supply(app.store, "ujoule")


def code_of(outcome) -> tuple[int, str]:
    """(code, codespace) of an ABCI answer, or of the TxError class it should fail with."""
    return outcome.code, outcome.codespace


def get_error_codes() -> set[tuple[int, str]]:
    """(code, codespace) of every error a tx can fail with: each TxError subclass in the chain's modules that
    sets its own code, found by walking the subclasses, so it holds wherever the modules put them."""
    codes, pending = set(), TxError.__subclasses__()
    while pending:
        error = pending.pop()
        pending += error.__subclasses__()
        if error.__module__.startswith("chain.") and "code" in vars(error):
            codes.add(code_of(error))
    return codes


# --- reference vectors ------------------------------------------------------------------------------

def require_vectors(relative: str) -> Path:
    """A file or folder of ../shared/vectors/. Without it the test is skipped, or fails when CI is set."""
    path = VECTORS / relative
    if not path.exists():
        message = (f"reference vectors not found at {path}: they come from the project's shared folder, "
                   f"checked out as ../shared/vectors/ beside the repo")
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return path


# --- the `maxwell` CLI and dev chain ---------------------------------------------------------------

MAXWELL = Path(sys.executable).with_name("maxwell")
MNEMONIC = "tongue item average girl you travel orphan habit produce diagram oblige lumber"
ALICE = "mxw16sh2wgmwtstq6xn883a684z45vhg4kkxq3hdxp"
PASSPHRASE = "a long enough passphrase"
GENESIS_AMOUNT = 1_000_000_000
STARTUP_TIMEOUT_SECONDS = 60


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli_app, [str(a) for a in args], input=input)


def assert_one_line_error(result, *fragments: str) -> None:
    stderr = result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 1, stderr
    assert "Traceback" not in stderr and "Traceback" not in result.stdout
    prompts, _, message = stderr.partition("Error: ")
    assert message.endswith("\n") and "\n" not in message[:-1], stderr
    assert not prompts or prompts.rstrip().endswith(":"), stderr
    for fragment in fragments:
        assert fragment in message, stderr


def compute_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_funded_home(home: Path, chain_id: str = "maxwell-cli-1") -> None:
    """A node home with alice (test keyring, funded in genesis) and bob (file keyring, unfunded)."""
    assert invoke("keys", "add", "alice", "--recover", "--keyring-backend", "test", "--home", home,
                  input=MNEMONIC + "\n").exit_code == 0
    (home / "passphrase").write_text(PASSPHRASE + "\n")
    assert invoke("keys", "add", "bob", "--keyring-passphrase-file", home / "passphrase", "--home", home).exit_code == 0
    assert invoke("init", "--chain-id", chain_id, "--home", home).exit_code == 0
    assert invoke("genesis", "add-account", "alice", f"{GENESIS_AMOUNT}ujoule", "--keyring-backend", "test",
                  "--home", home).exit_code == 0


def start_dev_chain(home: Path, block_time: str = "200ms", grpc: str = "off", rest: str = "off", *args: str,
                    log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`maxwell dev` on a free port (its gRPC server on `grpc`, its REST gateway on `rest`, then `args`), once it
    has made a block; its log goes on in `log_path` (home/dev.log by default) across restarts."""
    port = compute_free_port()
    log_path = log_path or home / "dev.log"
    log = open(log_path, "a")
    process = subprocess.Popen(
        [str(MAXWELL), "dev", "--home", str(home), "--rpc", f"tcp://127.0.0.1:{port}", "--block-time", block_time,
         "--grpc", grpc, "--rest", rest, *args],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    rpc = client.Client(url, timeout=2)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"maxwell dev exited with {process.returncode}: {read_log_tail(log_path)}")
        try:
            if rpc.status().latest_block_height >= 1:
                return process, url
        except client.ClientError:
            pass
        if time.monotonic() > deadline:
            stop_dev_chain(process)
            raise AssertionError(f"maxwell dev did not produce a block: {read_log_tail(log_path)}")
        time.sleep(0.2)


def read_log_tail(path: Path) -> str:
    """The end of a dev chain's log: `path` is the log or the home holding dev.log."""
    return (path / "dev.log" if path.is_dir() else path).read_text()[-3000:]


def stop_dev_chain(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- a small real ABCI app and dev chain homes for it ----------------------------------------------

CODE_BAD_TX = 1


class KVStoreApp:
    """Tx "k=v" sets k; the app hash is sha256 of the sorted state.

    Persists on Commit only (one synced LevelDB batch), so a crash rolls back to the last Commit. It keeps
    the consensus calls it gets, and how many calls ran at once on how many threads (a server must serialize them).
    """

    def __init__(self, data_dir: str, delay_s: float = 0.0, vote_extensions_from: int = 0, crash_at: str = ""):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.db = plyvel.DB(str(Path(data_dir) / "application.db"), create_if_missing=True)
        self.delay_s = delay_s
        self.vote_extensions_from = vote_extensions_from
        self.height = int(self.db.get(b"meta:height", b"0"))
        self.app_hash = self.db.get(b"meta:app_hash", b"")
        self.staged: dict[bytes, bytes] = {}
        self.calls: list[str] = []
        self.seen_extensions: list[tuple[int, bytes, bytes]] = []
        self.reject_next_proposals = 0
        self.crash_at = crash_at
        self.in_flight = 0
        self.max_in_flight = 0
        self.threads: set[str] = set()
        self._guard = threading.Lock()

    def _enter(self):
        with self._guard:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.threads.add(threading.current_thread().name)
        time.sleep(0.0005)
        with self._guard:
            self.in_flight -= 1

    def _maybe_crash(self, point: str):
        """SIGKILL this process at `point` (finalize_block, commit_before, commit_after) of the first block with txs."""
        if self.crash_at == point and self.pending_txs:
            os.kill(os.getpid(), signal.SIGKILL)

    def close(self):
        self.db.close()

    def _state(self) -> dict[bytes, bytes]:
        state = {k[len(b"kv:"):]: v for k, v in self.db.iterator(prefix=b"kv:")}
        state.update(self.staged)
        return state

    @staticmethod
    def _parse(tx: bytes):
        """(key, value) of a UTF-8 "key=value" tx (its events carry both as text), else None."""
        try:
            tx.decode()
        except UnicodeDecodeError:
            return None
        key, sep, value = tx.partition(b"=")
        return (key, value) if sep and key else None

    def info(self, request):
        self._enter()
        self.calls.append("info")
        return abci.ResponseInfo(data="kvstore", version=request.version, app_version=1,
                                 last_block_height=self.height, last_block_app_hash=self.app_hash)

    def init_chain(self, request):
        self._enter()
        self.calls.append("init_chain")
        self.init_request = request
        response = abci.ResponseInitChain(app_hash=hashlib.sha256(request.app_state_bytes).digest())
        if self.vote_extensions_from:
            response.consensus_params.abci.vote_extensions_enable_height = self.vote_extensions_from
        self.app_hash = response.app_hash
        return response

    def check_tx(self, request):
        self._enter()
        if self._parse(request.tx) is None:
            return abci.ResponseCheckTx(code=CODE_BAD_TX, log="tx must be key=value", codespace="kv")
        if request.type == abci.RECHECK and self._parse(request.tx)[0] == b"stale":
            return abci.ResponseCheckTx(code=3, log="stale")
        return abci.ResponseCheckTx(code=0, data=len(request.tx).to_bytes(8, "big"), gas_wanted=1)

    def prepare_proposal(self, request):
        self._enter()
        self.calls.append("prepare_proposal")
        for vote in request.local_last_commit.votes:
            self.seen_extensions.append((request.height, vote.vote_extension, vote.extension_signature))
        return abci.ResponsePrepareProposal(txs=[tx for tx in request.txs if self._parse(tx)])

    def process_proposal(self, request):
        self._enter()
        self.calls.append("process_proposal")
        if self.reject_next_proposals:
            self.reject_next_proposals -= 1
            return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.REJECT)
        ok = all(self._parse(tx) for tx in request.txs)
        return abci.ResponseProcessProposal(
            status=abci.ResponseProcessProposal.ACCEPT if ok else abci.ResponseProcessProposal.REJECT)

    def extend_vote(self, request):
        self._enter()
        self.calls.append("extend_vote")
        return abci.ResponseExtendVote(vote_extension=b"heat:%d" % request.height)

    def verify_vote_extension(self, request):
        self._enter()
        ok = request.vote_extension == b"heat:%d" % request.height
        return abci.ResponseVerifyVoteExtension(
            status=abci.ResponseVerifyVoteExtension.ACCEPT if ok else abci.ResponseVerifyVoteExtension.REJECT)

    def finalize_block(self, request):
        self._enter()
        self.calls.append("finalize_block")
        self.staged = {}
        results = []
        for tx in request.txs:
            parsed = self._parse(tx)
            if parsed is None:
                results.append(abci.ExecTxResult(code=CODE_BAD_TX, log="tx must be key=value", codespace="kv"))
                continue
            key, value = parsed
            if key == b"fail":
                results.append(abci.ExecTxResult(code=2, log="refused", codespace="kv"))
                continue
            self.staged[key] = value
            results.append(abci.ExecTxResult(code=0, data=value, gas_wanted=1, gas_used=1, events=[
                abci.Event(type="app", attributes=[
                    abci.EventAttribute(key="key", value=key.decode(), index=True),
                    abci.EventAttribute(key="size", value=str(len(value)), index=True),
                    abci.EventAttribute(key="secret", value=value.decode(), index=False),
                ])]))
        time.sleep(self.delay_s)
        self.pending_txs = len(request.txs)
        self._maybe_crash("finalize_block")
        self.pending_height = request.height
        self.pending_hash = hashlib.sha256(b"".join(
            k + b"=" + v + b";" for k, v in sorted(self._state().items()))).digest()
        return abci.ResponseFinalizeBlock(
            tx_results=results, app_hash=self.pending_hash,
            events=[abci.Event(type="kvblock", attributes=[
                abci.EventAttribute(key="height", value=str(request.height), index=True)])])

    def commit(self, request):
        self._enter()
        self.calls.append("commit")
        time.sleep(self.delay_s)
        self._maybe_crash("commit_before")
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for key, value in self.staged.items():
                batch.put(b"kv:" + key, value)
            batch.put(b"meta:height", str(self.pending_height).encode())
            batch.put(b"meta:app_hash", self.pending_hash)
        self._maybe_crash("commit_after")
        self.height, self.app_hash, self.staged = self.pending_height, self.pending_hash, {}
        return abci.ResponseCommit()

    def query(self, request):
        self._enter()
        if request.path == "/panic":
            raise RuntimeError("query handler bug")
        if request.path == "/big":
            return abci.ResponseQuery(value=b"v" * int(request.data), height=self.height)
        value = self.db.get(b"kv:" + request.data)
        return abci.ResponseQuery(code=0 if value is not None else 1, key=request.data, value=value or b"",
                                  height=self.height, log="" if value is not None else "does not exist")

    def list_snapshots(self, request):
        self._enter()
        return abci.ResponseListSnapshots()

    def offer_snapshot(self, request):
        self._enter()
        return abci.ResponseOfferSnapshot(result=abci.ResponseOfferSnapshot.REJECT)

    def load_snapshot_chunk(self, request):
        self._enter()
        return abci.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(self, request):
        self._enter()
        return abci.ResponseApplySnapshotChunk(result=abci.ResponseApplySnapshotChunk.ABORT)


def make_home(home, app_state=None, genesis_time_ns=None, **genesis_args) -> privval.PrivValidatorKey:
    home = Path(home)
    key = privval.generate(home / "config" / "priv_validator_key.json")
    doc = create_genesis_doc(CHAIN_ID, key, {"greeting": "hello"} if app_state is None else app_state,
                             genesis_time_ns=genesis_time_ns, **genesis_args)
    (home / "config" / "genesis.json").write_text(json.dumps(doc, indent=2))
    return key


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def open_chain(home, **app_args):
    app = KVStoreApp(str(Path(home) / "data"), **app_args)
    return DevChain(home, app=app, block_time_ms=50), app


def close_chain(chain, app):
    chain.stop()
    app.close()


# --- the market's test chain -----------------------------------------------------------------------

DENOM = "ujoule"
GAS = 400_000
TEST_PARAMS = {
    "min_stake": "1000",
    "unbonding_blocks": "5",
    "task_deadline_blocks": "3",
    "protocol_fee_bps": "200",
    "slash_bps": "1000",
    "max_order_lifetime": "50",
}
TEST_PROCESS_PARAMS = {"memory_rent_per_byte": "2"}
VALIDATOR_SEED = bytes(range(32))


def events(response, kind: str) -> list[dict]:
    """Attributes of every `kind` event of a block: its txs' events, then end block's."""
    found = [e for result in response.tx_results for e in result.events if e.type == kind]
    found += [e for e in response.events if e.type == kind]
    return [{a.key: a.value for a in e.attributes} for e in found]


def compute_market_accounting(store) -> tuple[int, int]:
    """(escrow, stake) that the market's records hold."""
    records = market.export_genesis(store)
    held = records.get("orders", []) + records.get("assignments", [])
    return (sum(int(r.get("escrow", "0")) for r in held),
            sum(int(p.get("stake", "0")) for p in records.get("providers", [])))


def compute_process_escrow(store) -> int:
    """The escrow that the process records hold."""
    return sum(int(r.get("escrow", "0")) for r in process.export_genesis(store).get("processes", []))


def check_invariants(app: App, response) -> None:
    assert total_balances(app) == supply(app), "supply invariant broken"
    escrow, stake = compute_market_accounting(app.store)
    assert bank.get_balance(app.store, market.ESCROW, DENOM) == escrow
    assert bank.get_balance(app.store, market.STAKE, DENOM) == stake
    assert bank.get_balance(app.store, process.ESCROW, DENOM) == compute_process_escrow(app.store)
    used: dict[str, int] = {}
    for fill in events(response, "lease_filled"):
        used[fill["provider"]] = used.get(fill["provider"], 0) + int(fill["slots"])
    for task in events(response, "task_assigned"):
        used[task["provider"]] = used.get(task["provider"], 0) + 1
    for provider, slots in used.items():
        offered = market.get_provider(app.store, bank.crypto.decode_address(provider))
        assert offered is None or slots <= offered.slots_per_block, f"{provider} over capacity"


class Chain:
    """The App with funded accounts; `block` finalizes, commits and checks the invariants."""

    def __init__(self, path, accounts, params: dict | None = None, market_genesis: dict | None = None,
                 heat_reading: heat.HeatReading | None = None):
        self.app = App(str(path), heat_sensor=(lambda: heat_reading) if heat_reading else None)
        self.accounts = accounts
        genesis = make_app_state(accounts)
        genesis["market"] = market_genesis or {"params": {**TEST_PARAMS, **(params or {})}}
        genesis["process"] = {"params": TEST_PROCESS_PARAMS}
        validator = nacl.signing.SigningKey(VALIDATOR_SEED)
        self.validator = validator
        self.app.init_chain(abci.RequestInitChain(
            time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1, app_state_bytes=json.dumps(genesis).encode(),
            validators=[abci.ValidatorUpdate(pub_key=crypto_keys.PublicKey(ed25519=bytes(validator.verify_key)), power=10)],
        ))
        self.block([])

    @property
    def height(self) -> int:
        return self.app.store.height

    def sign(self, account, *messages, gas: int = GAS) -> bytes:
        tx = sign_tx(account.private_key, list(messages), chain_id=CHAIN_ID, account_number=account.account_number,
                     sequence=account.sequence, fee=-(-gas // 40), gas_limit=gas)
        account.sequence += 1
        return tx

    def block(self, txs: list[bytes], **fields) -> abci.ResponseFinalizeBlock:
        height = self.height + 1
        response = self.app.finalize_block(abci.RequestFinalizeBlock(
            txs=txs, height=height, time=Timestamp(seconds=GENESIS_TIME.seconds + height), **fields))
        self.app.commit()
        for account in self.accounts:
            record = auth.get_account(self.app.store, account.address)
            account.sequence = record.sequence if record else 0
        check_invariants(self.app, response)
        return response

    def run(self, account, *messages, gas: int = GAS) -> tuple[abci.ExecTxResult, abci.ResponseFinalizeBlock]:
        response = self.block([self.sign(account, *messages, gas=gas)])
        return response.tx_results[0], response

    def ok(self, account, *messages, gas: int = GAS) -> abci.ResponseFinalizeBlock:
        result, response = self.run(account, *messages, gas=gas)
        assert result.code == 0, result.log
        return response

    def query(self, path: str, request):
        response = self.app.query(abci.RequestQuery(path=path, data=request.SerializeToString()))
        assert response.code == 0, response.log
        return getattr(query_pb2, type(request).__name__.replace("Request", "Response")).FromString(response.value)

    def balance(self, who) -> int:
        return bank.get_balance(self.app.store, getattr(who, "address", who), DENOM)

    def snapshot(self) -> tuple:
        """The market's three stores and their accounts: what a rejected message must leave alone."""
        rows = tuple(tuple(self.app.store.iterate(store)) for store in (heat.STORE, market.STORE, process.STORE))
        return rows, self.balance(market.ESCROW), self.balance(market.STAKE), self.balance(process.ESCROW)


def register(account, *, models=("digits",), slots=4, ask=100, zone="z0", stake=1000, link=None) -> tx_pb2.MsgRegisterProvider:
    message = tx_pb2.MsgRegisterProvider(provider=account.bech32, models=list(models), slots_per_block=slots,
                                         ask_price=str(ask), zone=zone, stake=str(stake))
    if link is not None:
        message.validator_pub_key = bytes(link.verify_key)
        message.validator_signature = link.sign(heat.compute_link_sign_bytes(CHAIN_ID, account.address)).signature
    return message


def order_id(result: abci.ExecTxResult) -> int:
    responses = sdk_abci.TxMsgData.FromString(result.data).msg_responses
    return tx_pb2.MsgBidResponse.FromString(responses[0].value).order_id


# --- the inference module's test chain -------------------------------------------------------------

REWARD = 3000
INFERENCE_GAS = 600_000


def inference_accounting(store) -> int:
    requests = get_messages(State(store, GasMeter(), GasParams(), inference.STORE), inference_pb2.Request,
                            inference.state_key(inference.REQUEST))
    return sum(int(r.unplaced) for r in requests
               if r.status == inference_pb2.STATUS_PENDING)


class InferenceChain(Chain):
    """The market's test chain; every block also checks the inference module's escrow."""

    def __init__(self, path, accounts, inference_genesis: dict, task_deadline_blocks: int = 40):
        self.app = App(str(path), verifier=ModelVerifier(str(path)))
        self.accounts = accounts
        genesis = make_app_state(accounts)
        genesis["process"] = {"params": TEST_PROCESS_PARAMS}
        genesis["market"] = {"params": {**TEST_PARAMS, "models": ["digits", "panic", "whole"], "unbonding_blocks": "50",
                                        "task_deadline_blocks": str(task_deadline_blocks)}}
        genesis["inference"] = inference_genesis
        self.validator = nacl.signing.SigningKey(VALIDATOR_SEED)
        self.app.init_chain(abci.RequestInitChain(
            time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1, app_state_bytes=json.dumps(genesis).encode(),
            validators=[abci.ValidatorUpdate(pub_key=crypto_keys.PublicKey(ed25519=bytes(self.validator.verify_key)),
                                             power=10)],
        ))
        self.block([])

    def block(self, txs, **fields):
        response = super().block(txs, **fields)
        assert self.balance(inference.ESCROW) == inference_accounting(self.app.store)
        return response

    def iquery(self, path: str, request):
        response = self.app.query(abci.RequestQuery(path=f"/maxwell.inference.v1.Query/{path}",
                                                    data=request.SerializeToString()))
        assert response.code == 0, response.log
        return getattr(inference_query, type(request).__name__.removesuffix("Request") + "Response").FromString(response.value)

    def snapshot(self) -> tuple:
        market_rows = tuple(row for row in self.app.store.iterate(market.STORE) if row[0][0] != market.CLEARING)
        return (market_rows, tuple(self.app.store.iterate(inference.STORE)),
                self.balance(market.ESCROW), self.balance(market.STAKE), self.balance(inference.ESCROW),
                tuple(self.balance(a) for a in self.accounts))


def request_msg(account, values, model="digits", reward=REWARD, deadline=None,
                chain=None) -> inference_tx.MsgRequestInference:
    return inference_tx.MsgRequestInference(requester=account.bech32, model=model,
                                            input=list(compute_quantized(values, 13)), reward=str(reward),
                                            deadline_height=deadline or chain.height + 30)


def submit_msg(account, request_id: int, layer: int, proof) -> inference_tx.MsgSubmitInference:
    return inference_tx.MsgSubmitInference(prover=account.bech32, request_id=request_id, layer=layer,
                                           outputs=list(proof.outputs), proof=proof.proof)


def request(chain, account, values, **fields) -> int:
    response = chain.ok(account, request_msg(account, values, chain=chain, **fields), gas=INFERENCE_GAS)
    data = sdk_abci.TxMsgData.FromString(response.tx_results[0].data)
    return inference_tx.MsgRequestInferenceResponse.FromString(data.msg_responses[0].value).request_id


@contextlib.contextmanager
def inference_task_bids():
    """While open, MsgBid places inference tasks through market.process_place_bid, as only the inference
    module may for its requests: for tests of the market's task rules, without a request behind each task.
    Public bids refuse inference work (tests/test_hardening.py drives the real handler)."""
    url = compute_type_url(tx_pb2.MsgBid)
    real = registry.HANDLERS[url]

    def check_stateless(msg) -> None:
        if not market.is_inference(msg.work):
            real.check_stateless(msg)

    def check_and_execute(state, ctx, msg):
        if not market.is_inference(msg.work):
            return real.check_and_execute(state, ctx, msg)
        order = market.process_place_bid(state, ctx, crypto.decode_address(msg.owner), msg.work, msg.slots,
                                         int(msg.max_price), msg.expiry_height, msg.task_ref)
        return tx_pb2.MsgBidResponse(order_id=order)

    registry.HANDLERS[url] = MessageHandler(real.proto, real.signer, check_stateless, check_and_execute)
    try:
        yield
    finally:
        registry.HANDLERS[url] = real


# --- the dev chain's JSON-RPC ----------------------------------------------------------------------

def post(node, body: bytes) -> tuple[int, object]:
    request = urllib.request.Request(node.rpc_server.url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def call(node, method: str, request_id=7, **params) -> dict:
    status, response = post(node, json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                              "params": params}).encode())
    assert status == 200
    assert response["jsonrpc"] == "2.0" and response["id"] == request_id
    return response


def result(node, method: str, **params) -> dict:
    response = call(node, method, **params)
    assert "error" not in response, response
    return response["result"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


def post_rpc(port, method, **params):
    """A JSON-RPC call to the node on 127.0.0.1:`port`: its whole answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


# --- the staking chain: gen_txs, validator keys, CometBFT's validator set ---------------------------

JOULE = 10**6


def make_consensus_key(seed: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([seed]) * 32)


STAKING_KEYS = tuple(make_consensus_key(seed) for seed in range(1, 5))


def compute_consensus_public_key(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


def compute_consensus(key: nacl.signing.SigningKey) -> bytes:
    return compute_consensus_address(compute_consensus_public_key(key))


def compute_operator(account) -> str:
    return validators.format_operator(account.address)


def dec(text: str) -> str:
    """A LegacyDec written as a decimal ("0.1") in its wire spelling."""
    return format_dec(parse_dec_text(text, "decimal", ValueError))


def make_create_validator(account, key, amount: int, *, rate="0.1", max_rate="0.2", max_change_rate="0.01",
                          min_self_delegation="1", pubkey=None) -> staking_tx.MsgCreateValidator:
    return staking_tx.MsgCreateValidator(
        description={"moniker": account.name}, min_self_delegation=min_self_delegation,
        commission={"rate": dec(rate), "max_rate": dec(max_rate), "max_change_rate": dec(max_change_rate)},
        validator_address=compute_operator(account), value={"denom": DENOM, "amount": str(amount)},
        pubkey=pubkey or pack_any(ed25519_keys.PubKey(key=compute_consensus_public_key(key)), validators.ED25519_PUBKEY_URL),
    )


def make_gen_tx(account, key, amount: int, *messages, **fields) -> dict:
    """A gentx as SDK genesis files hold it: the JSON of a signed Tx (account sequence 0)."""
    raw = cosmos_tx.TxRaw.FromString(sign_tx(
        account.private_key, list(messages) or [make_create_validator(account, key, amount, **fields)],
        chain_id=CHAIN_ID, account_number=account.account_number, sequence=0, fee=-(-GAS // 40), gas_limit=GAS))
    tx = cosmos_tx.Tx(body=cosmos_tx.TxBody.FromString(raw.body_bytes), signatures=raw.signatures,
                      auth_info=cosmos_tx.AuthInfo.FromString(raw.auth_info_bytes))
    return encode_sdk_json(json_format.MessageToDict(tx, preserving_proto_field_name=True), cosmos_tx.Tx.DESCRIPTOR)


def compute_update_powers(response) -> dict[bytes, int]:
    """ed25519 key -> power of the validator updates FinalizeBlock (or InitChain) returned."""
    updates = getattr(response, "validator_updates", None) or response.validators
    return {bytes(update.pub_key.ed25519): update.power for update in updates}


def compute_staking_accounting(store) -> tuple[int, int]:
    """(bonded, not bonded) ujoule that the staking records hold."""
    records = staking.export_genesis(store)
    tokens = {"bonded": 0, "not_bonded": 0}
    for validator in records.get("validators", []):
        tokens["bonded" if validator["status"] == "BOND_STATUS_BONDED" else "not_bonded"] += int(validator.get("tokens", "0"))
    tokens["not_bonded"] += sum(int(entry.get("balance", "0")) for unbonding in records.get("unbonding_delegations", [])
                                for entry in unbonding["entries"])
    return tokens["bonded"], tokens["not_bonded"]


def get_staking_set(store) -> dict[bytes, int]:
    """ed25519 key -> power of staking's last validator set."""
    state = State(store, GasMeter(), GasParams(), staking.STORE)
    return {bytes(update.pub_key.ed25519): update.power for update in validators.get_validator_set(state)}


class StakingChain(Chain):
    """The App driven as CometBFT drives a chain whose validators staking elects: InitChain's validators are
    those the gen_txs bond; each block's decided last commit has a vote of every validator of the height
    before (absent where asked); FinalizeBlock's updates take effect two heights later. Every block checks
    the market's invariants, the pools against the staking records, and CometBFT's set against staking's."""

    def __init__(self, path, accounts, gen_txs: list[dict], staking_genesis: dict | None = None,
                 slashing_genesis: dict | None = None, cometbft_validators: list | None = None):
        self.app = App(str(path))
        self.accounts = accounts
        genesis = make_app_state(accounts)
        genesis["genutil"] = {"gen_txs": gen_txs}
        genesis["staking"] = staking_genesis or {}
        genesis["slashing"] = slashing_genesis or {}
        self.time_ns = GENESIS_TIME.seconds * 10**9
        self.genesis = self.app.init_chain(abci.RequestInitChain(
            time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1, app_state_bytes=json.dumps(genesis).encode(),
            validators=cometbft_validators or []))
        powers = compute_update_powers(self.genesis) or {
            bytes(update.pub_key.ed25519): update.power for update in cometbft_validators or []}
        self.sets = {1: powers, 2: dict(powers)}
        self.block([])

    def block(self, txs=(), *, absent=(), misbehavior=(), seconds: int = 1) -> abci.ResponseFinalizeBlock:
        height = self.height + 1
        self.time_ns += seconds * 10**9
        votes = [abci.VoteInfo(validator=abci.Validator(address=compute_consensus_address(key), power=power),
                               block_id_flag=validator_pb2.BLOCK_ID_FLAG_ABSENT if key in absent
                               else validator_pb2.BLOCK_ID_FLAG_COMMIT)
                 for key, power in self.sets.get(height - 1, {}).items()]
        response = self.app.finalize_block(abci.RequestFinalizeBlock(
            txs=list(txs), height=height, time=Timestamp(seconds=self.time_ns // 10**9),
            decided_last_commit=abci.CommitInfo(votes=votes), misbehavior=list(misbehavior),
            next_validators_hash=hashlib.sha256(b"%d" % (height + 1)).digest(), proposer_address=b"\x01" * 20))
        self.app.commit()
        following = dict(self.sets[height + 1])
        for update in response.validator_updates:
            if update.power:
                following[bytes(update.pub_key.ed25519)] = update.power
            else:
                del following[bytes(update.pub_key.ed25519)]
        self.sets[height + 2] = following
        for account in self.accounts:
            record = auth.get_account(self.app.store, account.address)
            account.sequence = record.sequence if record else 0
        check_invariants(self.app, response)
        bonded, not_bonded = compute_staking_accounting(self.app.store)
        assert self.balance(validators.BONDED_POOL) == bonded, "bonded pool differs from the bonded validators' tokens"
        assert self.balance(validators.NOT_BONDED_POOL) == not_bonded, "not-bonded pool differs from the records"
        if validators.is_managing_validator_set(self.app.store):
            assert get_staking_set(self.app.store) == following
        return response

    def query(self, path: str, request):
        response = self.app.query(abci.RequestQuery(path=path, data=request.SerializeToString()))
        assert response.code == 0, response.log
        module = sys.modules[type(request).__module__]
        return getattr(module, type(request).__name__.replace("Request", "Response")).FromString(response.value)

    def validator(self, account) -> staking_pb2.Validator:
        return self.query("/cosmos.staking.v1beta1.Query/Validator", staking_query.QueryValidatorRequest(
            validator_addr=compute_operator(account))).validator

    def query_error(self, path: str, request) -> tuple[int, str]:
        return code_of(self.app.query(abci.RequestQuery(path=path, data=request.SerializeToString())))

    def staking_snapshot(self) -> tuple:
        """The staking records (but the blocks' historical info), the pools and the supply: what a rejected
        message leaves alone."""
        records = tuple(row for row in self.app.store.iterate(staking.STORE) if row[0][0] != validators.HISTORICAL_INFO)
        return records, self.balance(validators.BONDED_POOL), self.balance(validators.NOT_BONDED_POOL), supply(self.app)


def start_staking_chain(path, people, **genesis) -> StakingChain:
    """A chain of two validators from gen_txs: people[0] bonds 10 joule with STAKING_KEYS[0], people[1] 5 with
    STAKING_KEYS[1]; `genesis` are StakingChain's staking_genesis and slashing_genesis."""
    gen_txs = [make_gen_tx(people[0], STAKING_KEYS[0], 10 * JOULE), make_gen_tx(people[1], STAKING_KEYS[1], 5 * JOULE)]
    return StakingChain(path, people, gen_txs, **genesis)
