"""The application end to end through its ABCI methods, on a real LevelDB store."""

import json

import bech32
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import auth, bank, crypto
from chain.app import App, GenesisError
from chain.errors import (
    InsufficientFundsError,
    InvalidRequestError,
    InvalidSequenceError,
    NotFoundError,
    OutOfGasError,
    UnauthorizedError,
    UnknownRequestError,
)
from chain.proto.cosmos.auth.v1beta1 import auth_pb2
from chain.proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query
from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx
from chain.proto.cosmos.crypto.secp256k1 import keys_pb2
from chain.proto.cosmos.tx.v1beta1 import service_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.state import encode_event, write_events
from chain.tx import pack_any, sign_tx
from ibc import ics23
from node import sighelper
from tests.helpers import (
    CHAIN_ID,
    INITIAL_BALANCE,
    Account,
    code_of,
    finalize,
    get_error_codes,
    init_app,
    make_account,
    send,
    supply,
    total_balances,
)


def balance(app: App, account: Account | bytes) -> int:
    address = account.address if isinstance(account, Account) else account
    return bank.get_balance(app.store, address, "ujoule")


def run_block(app: App, txs: list[bytes]) -> abci.ResponseFinalizeBlock:
    response = finalize(app, app.store.height + 1, txs)
    app.commit()
    assert total_balances(app) == supply(app), "supply invariant broken"
    return response


def check(app: App, tx: bytes) -> abci.ResponseCheckTx:
    return app.check_tx(abci.RequestCheckTx(tx=tx, type=abci.NEW))


def test_genesis_funds_accounts_and_supply(app, accounts):
    assert [balance(app, a) for a in accounts] == [INITIAL_BALANCE] * 3
    assert supply(app) == 3 * INITIAL_BALANCE
    assert app.info(abci.RequestInfo()).last_block_height == 1
    assert app.info(abci.RequestInfo()).last_block_app_hash == app.store.app_hash


def test_send_moves_funds_pays_fee_and_bumps_sequence(app, accounts):
    alice, bob, _ = accounts
    stranger = make_account("stranger", 99).address
    response = run_block(app, [send(alice, bob.address, 1234, fee=5000), send(bob, stranger, 10, fee=5000)])
    assert [r.code for r in response.tx_results] == [0, 0], [r.log for r in response.tx_results]
    assert balance(app, alice) == INITIAL_BALANCE - 1234 - 5000
    assert balance(app, bob) == INITIAL_BALANCE + 1234 - 10 - 5000
    assert balance(app, stranger) == 10
    assert balance(app, bank.FEE_COLLECTOR) == 10000
    assert auth.get_account(app.store, alice.address).sequence == 1
    assert auth.get_account(app.store, stranger).account_number == 3
    result = response.tx_results[0]
    kinds = [e.type for e in result.events]
    for kind in ("tx", "message", "coin_spent", "coin_received", "transfer"):
        assert kind in kinds
    transfer = [e for e in result.events if e.type == "transfer"][-1]
    assert {a.key: a.value for a in transfer.attributes} == {"recipient": bob.bech32, "sender": alice.bech32, "amount": "1234ujoule"}
    assert 0 < result.gas_used <= result.gas_wanted == 200_000


def test_app_hash_changes_with_state_and_is_deterministic(tmp_path, accounts):
    hashes = []
    for name in ("one", "two"):
        app = App(str(tmp_path / name))
        init_app(app, accounts)
        row = [finalize(app, 1, []).app_hash]
        app.commit()
        alice = make_account("alice", 0)
        row.append(finalize(app, 2, [send(alice, accounts[1].address, 7)]).app_hash)
        app.commit()
        hashes.append(row)
        app.close()
    assert hashes[0] == hashes[1]
    assert hashes[0][0] != hashes[0][1]


def test_restart_keeps_height_hash_and_balances(tmp_path, accounts):
    app = App(str(tmp_path / "data"))
    init_app(app, accounts)
    finalize(app, 1, [send(accounts[0], accounts[1].address, 5)])
    app.commit()
    height, app_hash = app.store.height, app.store.app_hash
    app.close()
    app = App(str(tmp_path / "data"))
    assert (app.store.height, app.store.app_hash) == (height, app_hash)
    assert balance(app, accounts[1]) == INITIAL_BALANCE + 5
    assert app.chain_id == CHAIN_ID
    app.close()


def test_crash_between_finalize_and_commit_replays_to_same_hash(tmp_path, accounts):
    app = App(str(tmp_path / "data"))
    init_app(app, accounts)
    finalize(app, 1, [])
    app.commit()
    tx = send(accounts[0], accounts[1].address, 42)
    expected = finalize(app, 2, [tx]).app_hash
    app.close()  # crash: FinalizeBlock ran, Commit never did
    app = App(str(tmp_path / "data"))
    assert app.info(abci.RequestInfo()).last_block_height == 1
    assert balance(app, accounts[1]) == INITIAL_BALANCE
    assert finalize(app, 2, [tx]).app_hash == expected
    app.commit()
    assert balance(app, accounts[1]) == INITIAL_BALANCE + 42
    app.close()


def test_crash_after_init_chain_before_first_commit_reports_height_zero(tmp_path, accounts):
    app = App(str(tmp_path / "data"))
    first = init_app(app, accounts)
    app.close()
    app = App(str(tmp_path / "data"))
    assert app.info(abci.RequestInfo()).last_block_height == 0
    assert init_app(app, accounts) == first
    app.close()


# --- bad input: a clear code, nothing changes ----------------------------------------------------

def bad_txs(accounts) -> dict[str, tuple[bytes, int]]:
    alice, bob, _ = accounts

    def with_amount(amount_text: str) -> bytes:
        message = bank_tx.MsgSend(from_address=alice.bech32, to_address=bob.bech32, amount=[{"denom": "ujoule", "amount": amount_text}])
        return sign_tx(alice.private_key, [message], chain_id=CHAIN_ID, account_number=0, sequence=0, fee=5000, gas_limit=200_000)

    unknown = sign_tx(alice.private_key, [auth_pb2.Params()], chain_id=CHAIN_ID, account_number=0, sequence=0, fee=5000, gas_limit=200_000)
    good = tx_pb2.TxRaw.FromString(send(alice, bob.address, 1))
    flipped = bytearray(good.signatures[0])
    flipped[5] ^= 1
    bad_signature = tx_pb2.TxRaw(body_bytes=good.body_bytes, auth_info_bytes=good.auth_info_bytes, signatures=[bytes(flipped)])
    return {
        "undecodable": (b"\xff\x00garbage", 2),
        "empty": (b"", 18),  # decodes to an empty TxRaw: no messages
        "unknown message": (unknown, 6),
        "wrong chain-id": (send(alice, bob.address, 1, chain_id="other-chain"), 4),
        "bad signature": (bad_signature.SerializeToString(), 4),
        "signed with another key": (send(Account("mallory", make_account("mallory", 0).private_key, alice.public_key, alice.address, 0), bob.address, 1), 8),
        "future sequence": (send(alice, bob.address, 1, sequence=5), 32),
        "insufficient funds": (send(alice, bob.address, INITIAL_BALANCE * 2), 5),
        "insufficient fee": (send(alice, bob.address, 1, fee=1), 13),
        "fee beyond balance": (send(alice, bob.address, 1, fee=INITIAL_BALANCE * 2), 5),
        "zero amount": (with_amount("0"), 10),
        "negative amount": (with_amount("-5"), 10),
        "non-integer amount": (with_amount("1.5"), 10),
        "over uint256": (with_amount(str(2**256)), 10),
        "invalid bech32": (send(alice, "mxw1notanaddress", 1), 7),
        "wrong prefix": (send(alice, crypto.encode_address(bob.address, "cosmos"), 1), 7),
        "oversized": (send(alice, bob.address, 1) + b"\x22" + b"\x80\x80\x04" + b"x" * 65536, 21),
        "unknown account": (send(make_account("nobody", 7), bob.address, 1), 9),
    }


BAD_NAMES = list(bad_txs([make_account(n, i) for i, n in enumerate(["alice", "bob", "carol"])]))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_tx_is_rejected_with_code_and_changes_nothing(app, accounts, name):
    tx, code = bad_txs(accounts)[name]
    before = (app.store.app_hash, [balance(app, a) for a in accounts])
    result = check(app, tx)
    assert code_of(result) == (code, "sdk"), result.log
    assert result.log
    delivered = run_block(app, [tx]).tx_results[0]
    if name == "insufficient funds":  # passed the ante handler in the block: the fee is spent, as in the SDK
        assert code_of(delivered) == code_of(InsufficientFundsError)
        assert balance(app, accounts[0]) == INITIAL_BALANCE - 5000
        return
    assert code_of(delivered) == code_of(result)
    assert app.store.app_hash == before[0]
    assert [balance(app, a) for a in accounts] == before[1]
    assert auth.get_account(app.store, accounts[0].address).sequence == 0


def test_replayed_tx_is_rejected(app, accounts):
    tx = send(accounts[0], accounts[1].address, 3)
    assert run_block(app, [tx]).tx_results[0].code == 0
    app_hash = app.store.app_hash
    result = check(app, tx)
    assert code_of(result) == code_of(InvalidSequenceError) and "sequence" in result.log
    assert code_of(run_block(app, [tx]).tx_results[0]) == code_of(InvalidSequenceError)
    assert balance(app, accounts[1]) == INITIAL_BALANCE + 3
    assert app.store.app_hash == app_hash  # a block of one rejected tx changes nothing


def test_bad_block_txs_leave_app_hash_as_empty_block(tmp_path, accounts):
    """A block of rejected txs yields the same app hash as an empty block."""
    hashes = []
    for name, txs in (("empty", []), ("bad", [tx for tx, _ in bad_txs(accounts).values() if tx != bad_txs(accounts)["insufficient funds"][0]])):
        app = App(str(tmp_path / name))
        init_app(app, accounts)
        finalize(app, 1, [])
        app.commit()
        hashes.append(finalize(app, 2, txs).app_hash)
        app.close()
    assert hashes[0] == hashes[1]


def test_check_state_tracks_sequences_and_resets_on_commit(app, accounts):
    alice, bob, _ = accounts
    first = send(alice, bob.address, 1)
    alice.sequence = 1
    second = send(alice, bob.address, 1)
    assert check(app, first).code == 0
    assert check(app, second).code == 0
    assert code_of(check(app, first)) == code_of(InvalidSequenceError)
    run_block(app, [first])
    recheck = app.check_tx(abci.RequestCheckTx(tx=second, type=abci.RECHECK))
    assert recheck.code == 0


@pytest.mark.parametrize(
    "app_state",
    [b"not json", b"[1,2]", json.dumps({"bank": {"balances": [{"address": "mxw1bad", "coins": []}]}}).encode(),
     json.dumps({"bank": {"balances": [{"address": crypto.encode_address(b"\x01" * 20), "coins": [{"denom": "ujoule", "amount": "-1"}]}]}}).encode(),
     json.dumps({"bank": {"balances": [{"address": crypto.encode_address(b"\x01" * 20), "coins": [{"denom": "ujoule", "amount": "5"}]}], "supply": [{"denom": "ujoule", "amount": "6"}]}}).encode(),
     json.dumps({"auth": {"params": {"min_gas_price": "abc"}}}).encode()],
    ids=["not-json", "not-object", "bad-address", "negative", "supply-mismatch", "bad-param"],
)
def test_malformed_genesis_is_a_clear_error(tmp_path, app_state):
    app = App(str(tmp_path / "data"))
    with pytest.raises(GenesisError, match="genesis"):
        app.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1, app_state_bytes=app_state))
    assert app.info(abci.RequestInfo()).last_block_height == 0
    app.close()


# --- gas and the entropy tax ------------------------------------------------------------------

def test_erasing_state_costs_more_than_writing_it(app, accounts):
    alice, bob, _ = accounts
    emptied, kept = make_account("emptied", 3), make_account("kept", 4)
    funding = list(run_block(app, [send(alice, emptied.address, 100_000)]).tx_results)
    alice.sequence = 1
    funding += list(run_block(app, [send(alice, kept.address, 100_000)]).tx_results)
    assert [r.code for r in funding] == [0, 0]
    # the same send, except that one empties its sender: the balance entry is erased and taxed
    erase = run_block(app, [send(emptied, bob.address, 95_000)]).tx_results[0]
    keep = run_block(app, [send(kept, bob.address, 94_999)]).tx_results[0]
    assert (erase.code, keep.code) == (0, 0), (erase.log, keep.log)
    assert (balance(app, emptied), balance(app, kept)) == (0, 1)
    assert erase.gas_used > keep.gas_used


def test_entropy_tax_per_byte_exceeds_write_cost(tmp_path):
    from chain.state import GasMeter, GasParams, State
    from chain.store import Branch, Store

    store = Store(str(tmp_path / "db"), ["bank"])

    def gas(old: bytes | None, new: bytes | None) -> int:
        """The gas of turning key k from `old` into `new` (None: absent)."""
        state = State(Branch(store), GasMeter(), GasParams(), "bank")
        if old is not None:
            state.branch.set("bank", b"k", old)
        before = state.meter.consumed
        if new is None:
            state.delete(b"k")
        else:
            state.set(b"k", new)
        return state.meter.consumed - before

    big, small = b"v" * 100, b"v" * 10
    assert gas(big, None) > gas(None, big)  # erasing the entry costs more than writing it
    # the same write of `small`, over 90 more bytes or over 90 fewer: erasing 90 bytes costs more than writing them
    erased, written = gas(big, small) - gas(small, small), gas(small, big) - gas(small, small)
    assert erased > written > 0
    store.close()


def test_out_of_gas_keeps_fee_and_reverts_messages(app, accounts):
    alice, bob, _ = accounts
    result = run_block(app, [send(alice, bob.address, 10, gas=24_000, fee=1000)]).tx_results[0]
    assert code_of(result) == code_of(OutOfGasError), result.log
    assert balance(app, bob) == INITIAL_BALANCE
    assert balance(app, alice) == INITIAL_BALANCE - 1000
    # the ante's events stay with the fee it kept; the message's are gone with its writes
    amounts = [a.value for e in result.events if e.type == "transfer" for a in e.attributes if a.key == "amount"]
    assert amounts == ["1000ujoule"]
    assert any(e.type == "tx" and e.attributes[0].key == "acc_seq" for e in result.events)


@given(st.text(min_size=1, max_size=40), st.lists(st.tuples(st.text(max_size=40), st.text(max_size=300)), max_size=6))
def test_encoded_events_read_back_as_the_protobuf_events(kind, attributes):
    expected = abci.Event(type=kind, attributes=[abci.EventAttribute(key=k, value=v, index=True) for k, v in attributes])
    assert abci.Event.FromString(encode_event(kind, tuple(attributes))) == expected
    for message in (abci.ExecTxResult(code=3, log="x"), abci.ResponseFinalizeBlock(app_hash=b"h")):
        write_events(message, [encode_event(kind, tuple(attributes)), encode_event("second", ())])
        assert list(message.events) == [expected, abci.Event(type="second")]
        assert message.code == 3 if isinstance(message, abci.ExecTxResult) else message.app_hash == b"h"


# --- queries --------------------------------------------------------------------------------------

def test_grpc_queries(app, accounts):
    alice = accounts[0]
    request = bank_query.QueryBalanceRequest(address=alice.bech32, denom="ujoule")
    response = app.query(abci.RequestQuery(path="/cosmos.bank.v1beta1.Query/Balance", data=request.SerializeToString()))
    assert response.code == 0
    assert bank_query.QueryBalanceResponse.FromString(response.value).balance.amount == str(INITIAL_BALANCE)
    response = app.query(abci.RequestQuery(path="/cosmos.bank.v1beta1.Query/TotalSupply"))
    assert bank_query.QueryTotalSupplyResponse.FromString(response.value).supply[0].amount == str(3 * INITIAL_BALANCE)
    response = app.query(abci.RequestQuery(path="/cosmos.bank.v1beta1.Query/AllBalances",
                                           data=bank_query.QueryAllBalancesRequest(address=alice.bech32).SerializeToString()))
    assert [(c.denom, c.amount) for c in bank_query.QueryAllBalancesResponse.FromString(response.value).balances] == [("ujoule", str(INITIAL_BALANCE))]
    response = app.query(abci.RequestQuery(path="/cosmos.auth.v1beta1.Query/Account",
                                           data=auth_query.QueryAccountRequest(address=alice.bech32).SerializeToString()))
    any_account = auth_query.QueryAccountResponse.FromString(response.value).account
    assert any_account.type_url == "/cosmos.auth.v1beta1.BaseAccount"
    assert auth_pb2.BaseAccount.FromString(any_account.value).address == alice.bech32
    missing = app.query(abci.RequestQuery(path="/cosmos.auth.v1beta1.Query/Account",
                                          data=auth_query.QueryAccountRequest(address=make_account("x", 9).bech32).SerializeToString()))
    assert code_of(missing) == code_of(NotFoundError)
    assert "NotFound" in missing.log
    unknown = app.query(abci.RequestQuery(path="/nope"))
    assert code_of(unknown) == code_of(UnknownRequestError)
    garbled = app.query(abci.RequestQuery(path="/cosmos.bank.v1beta1.Query/Balance", data=b"\xff\xff"))
    assert code_of(garbled) == code_of(InvalidRequestError)


def test_query_at_past_height(app, accounts):
    alice, bob, _ = accounts
    run_block(app, [send(alice, bob.address, 50)])
    request = bank_query.QueryBalanceRequest(address=bob.bech32, denom="ujoule").SerializeToString()
    old = app.query(abci.RequestQuery(path="/cosmos.bank.v1beta1.Query/Balance", data=request, height=1))
    new = app.query(abci.RequestQuery(path="/cosmos.bank.v1beta1.Query/Balance", data=request))
    assert bank_query.QueryBalanceResponse.FromString(old.value).balance.amount == str(INITIAL_BALANCE)
    assert bank_query.QueryBalanceResponse.FromString(new.value).balance.amount == str(INITIAL_BALANCE + 50)
    assert (old.height, new.height) == (1, 2)


def test_simulate_estimates_gas_without_signature(app, accounts):
    alice, bob, _ = accounts
    message = bank_tx.MsgSend(from_address=alice.bech32, to_address=bob.bech32, amount=[{"denom": "ujoule", "amount": "5"}])
    tx = tx_pb2.Tx(
        body=tx_pb2.TxBody(messages=[pack_any(message)]),
        auth_info=tx_pb2.AuthInfo(signer_infos=[tx_pb2.SignerInfo(
            public_key=pack_any(keys_pb2.PubKey(key=alice.public_key), "/cosmos.crypto.secp256k1.PubKey"),
            mode_info={"single": {"mode": 0}}, sequence=0)], fee=tx_pb2.Fee()),
        signatures=[b""],
    )
    request = service_pb2.SimulateRequest(tx_bytes=tx.SerializeToString())
    response = app.query(abci.RequestQuery(path="/cosmos.tx.v1beta1.Service/Simulate", data=request.SerializeToString()))
    assert response.code == 0, response.log
    simulated = service_pb2.SimulateResponse.FromString(response.value)
    assert 10_000 < simulated.gas_info.gas_used < 200_000
    assert balance(app, bob) == INITIAL_BALANCE
    # the estimate must cover the signed tx, as cosmjs and Keplr rely on it (they add 30-40 %)
    real = run_block(app, [send(alice, bob.address, 5, gas=simulated.gas_info.gas_used, fee=5000)]).tx_results[0]
    assert real.code == 0, real.log
    assert real.gas_used <= simulated.gas_info.gas_used


def test_store_query_proofs_verify_against_next_app_hash(app, accounts):
    alice = accounts[0]
    key = bank.state_key(bank.BALANCE, alice.address, "ujoule")
    response = app.query(abci.RequestQuery(path="store/bank/key", data=key, prove=True))
    assert response.code == 0 and int(response.value) == INITIAL_BALANCE
    proofs = [ics23.decode_commitment_proof(op.data) for op in response.proof_ops.ops]
    root = app.store.app_hash
    ics23.verify_chained_membership([ics23.SMT_SPEC, ics23.TENDERMINT_SPEC], root, proofs, [b"bank", key], response.value)
    with pytest.raises(ics23.Ics23Error):
        ics23.verify_chained_membership([ics23.SMT_SPEC, ics23.TENDERMINT_SPEC], root, proofs, [b"bank", key], b"1")
    absent = bank.state_key(bank.BALANCE, make_account("ghost", 5).address, "ujoule")
    response = app.query(abci.RequestQuery(path="store/bank/key", data=absent, prove=True))
    assert response.value == b""
    proofs = [ics23.decode_commitment_proof(op.data) for op in response.proof_ops.ops]
    ics23.verify_chained_non_membership([ics23.SMT_SPEC, ics23.TENDERMINT_SPEC], root, proofs, [b"bank", absent])
    unknown = app.query(abci.RequestQuery(path="store/nope/key", data=key))
    assert code_of(unknown) == code_of(UnknownRequestError)


def test_genesis_export_round_trips(app, accounts, tmp_path):
    run_block(app, [send(accounts[0], accounts[1].address, 77)])
    exported = app.export_genesis()
    again = App(str(tmp_path / "again"))
    again.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1, app_state_bytes=json.dumps(exported).encode()))
    finalize(again, 1, [])
    again.commit()
    assert again.export_genesis()["bank"] == exported["bank"]
    assert again.export_genesis()["auth"]["params"] == exported["auth"]["params"]
    again.close()


# --- fuzz -----------------------------------------------------------------------------------------

ERROR_CODES = get_error_codes()


def assert_known_outcome(result) -> None:
    """Success, or an error the chain defines; never the internal error (1, "undefined") that a bug gives."""
    outcome = code_of(result)
    assert outcome != (1, "undefined"), result.log
    assert outcome == (0, "") or outcome in ERROR_CODES, (outcome, result.log)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_tx_bytes_never_escape(app, accounts, data):
    valid = send(accounts[0], accounts[1].address, 1)
    raw = data.draw(st.one_of(
        st.binary(max_size=400),
        st.builds(lambda i, b: valid[:i] + bytes([b]) + valid[i + 1:], st.integers(0, len(valid) - 1), st.integers(0, 255)),
        st.builds(lambda i: valid[:i], st.integers(0, len(valid))),
    ))
    app_hash = app.store.app_hash
    assert_known_outcome(check(app, raw))
    block = finalize(app, app.store.height + 1, [raw])
    assert len(block.tx_results) == 1
    assert_known_outcome(block.tx_results[0])
    app.store.discard()
    app.finalized = None
    assert app.store.app_hash == app_hash


@settings(max_examples=200, deadline=None)
@given(address=st.binary(min_size=20, max_size=20), upper=st.booleans())
def test_an_address_decoded_from_bech32_encodes_back_as_bech32_does(address, upper):
    """decode_address remembers the text it decoded for encode_address, which events use: it must be
    what bech32 itself encodes, lower case even when the tx wrote the address in upper case."""
    text = bech32.bech32_encode(crypto.BECH32_PREFIX, bech32.convertbits(address, 8, 5))
    crypto.decode_address.cache_clear()
    crypto._address_texts.clear()
    assert crypto.decode_address(text.upper() if upper else text) == address
    assert crypto.encode_address(address) == text
    assert crypto.encode_address(address, "cosmos") == bech32.bech32_encode("cosmos", bech32.convertbits(address, 8, 5))


def test_a_large_unseen_block_gives_the_same_results_with_and_without_the_signature_helper(tmp_path):
    """Blocks of MIN_ITEMS txs or more have their signatures checked ahead in a helper process; bad
    signatures among them fail exactly as when every signature is verified inline."""
    senders = [make_account(f"s{i}", i) for i in range(sighelper.MIN_ITEMS + 50)]
    txs = [send(a, senders[(a.account_number + 1) % len(senders)].address, 7) for a in senders]
    for index in (0, 5, 100, len(txs) - 1):  # flip a signature byte
        raw = tx_pb2.TxRaw.FromString(txs[index])
        raw.signatures[0] = bytes([raw.signatures[0][0] ^ 1]) + raw.signatures[0][1:]
        txs[index] = raw.SerializeToString()
    outcomes = []
    for helper in (True, False):
        chain = App(str(tmp_path / str(helper)), signature_helper=sighelper.SignatureHelper() if helper else None)
        init_app(chain, senders)
        finalize(chain, 1, [])
        chain.commit()
        response = finalize(chain, 2, txs)
        chain.commit()
        outcomes.append(([(r.code, r.codespace, r.log) for r in response.tx_results], response.app_hash,
                         helper and chain.signatures.helper.process is not None))
        chain.close()
    (with_helper, hash_with, helper_ran), (inline, hash_inline, _) = outcomes
    assert helper_ran
    assert [(code, space) for code, space, _ in with_helper].count(code_of(UnauthorizedError)) == 4
    assert with_helper == inline and hash_with == hash_inline


def test_a_dead_signature_helper_means_inline_verification_until_the_next_block_starts_another(tmp_path):
    senders = [make_account(f"s{i}", i) for i in range(sighelper.MIN_ITEMS + 50)]
    chain = App(str(tmp_path), signature_helper=sighelper.SignatureHelper())
    init_app(chain, senders)
    finalize(chain, 1, [])
    chain.commit()
    helper = chain.signatures.helper
    helper.start()
    dead = helper.process
    dead.kill()
    dead.join()
    response = finalize(chain, 2, [send(a, senders[(a.account_number + 1) % len(senders)].address, 7) for a in senders])
    chain.commit()
    assert [r.code for r in response.tx_results] == [0] * len(senders)
    assert helper.process is None
    response = finalize(chain, 3, [send(a, senders[(a.account_number + 2) % len(senders)].address, 1, sequence=1) for a in senders])
    assert [r.code for r in response.tx_results] == [0] * len(senders)
    assert helper.process is not None and helper.process.is_alive()
    chain.close()
