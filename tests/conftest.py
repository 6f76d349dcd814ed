"""Shared fixtures: funded test accounts, a fresh App on real LevelDB, signed transactions."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from chain import auth, bank, crypto
from chain.app import App
from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.tx import sign_tx
from zk.artifacts import load_manifest

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "vectors"
DIGITS = REPO / "circuits" / "digits"
CHAIN_ID = "maxwell-test-1"
GENESIS_TIME = Timestamp(seconds=1_700_000_000)
INITIAL_BALANCE = 10**12


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(DIGITS)


@pytest.fixture(scope="module")
def samples():
    """The digits circuits' held-out samples: inputs and labels."""
    return json.loads((DIGITS / "test.json").read_text())


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


@pytest.fixture
def accounts() -> list[Account]:
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "carol"])]


@pytest.fixture
def app(tmp_path, accounts):
    application = App(str(tmp_path / "data"))
    init_app(application, accounts)
    finalize(application, 1, [])
    application.commit()
    yield application
    application.close()
