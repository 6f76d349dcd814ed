"""The module registry: what each component exposes, and that a module only touches its own store."""

import json

import pytest

from chain import app as registry, bank, heat, market, process
from chain.app import GenesisError
from chain.errors import TxError
from chain.proto.maxwell.market.v1 import market_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.state import Context, GasMeter, GasParams, MessageHandler, State, StoreAccessError
from chain.store import Branch, Store
from tests.helpers import CHAIN_ID, finalize, make_app_state, send

def test_every_module_exposes_the_component_names():
    assert [module.STORE for module in registry.MODULES] == [
        "auth", "bank", "staking", "slashing", "heat", "market", "process", "inference", "ibc", "transfer", "icacontroller", "icahost"]
    for module in registry.MODULES:
        assert callable(module.init_chain) and callable(module.export_genesis) and callable(module.decode_key)
        for url, handler in getattr(module, "MESSAGES", {}).items():
            assert isinstance(handler, MessageHandler) and url == "/" + handler.proto.DESCRIPTOR.full_name
            assert registry.HANDLERS[url] is handler and registry.MODULE_OF[url] == module.STORE
        for path, route in getattr(module, "QUERIES", {}).items():
            assert registry.QUERIES[path] is route and registry.QUERY_STORE[path] == module.STORE
    assert [store for store, _ in registry.BEGIN_BLOCK] == ["staking", "slashing", "heat"]
    assert [store for store, _ in registry.END_BLOCK] == ["staking", "market", "process", "inference"]


def test_decode_key_reads_back_every_layout():
    cases = [
        (bank, bank.BALANCE, (b"\x01" * 20, "ujoule")),
        (market, market.BOOK, ("inference/digits", 2**256 - 8, 12)),
        (market, market.DEADLINE, (40, "7/0")),
        (process, process.MEMORY, (3, b"\x00\xffkey")),
        (heat, heat.ZONE_HEAT, ("z0",)),
    ]
    for module, kind, parts in cases:
        assert module.decode_key(module.state_key(kind, *parts)) == parts


def test_a_module_writing_another_modules_store_raises(tmp_path):
    store = Store(str(tmp_path / "db"), registry.STORES)
    branch = Branch(store)
    bank_state = State(branch, GasMeter(), GasParams(), bank.STORE)
    order = market_pb2.Order(id=1, owner="x", work="process", slots=1, remaining=1, max_price="1", escrow="0")
    with pytest.raises(StoreAccessError, match="chain.market touched the 'bank' store"):
        market._insert_order(bank_state, order)  # market's private code handed bank's state
    with pytest.raises(StoreAccessError):
        process.get_params.__wrapped__(bank_state)  # a reader, bypassing its public entry
    assert market.get_capacity(bank_state, "process") == 0  # through market's public function: allowed
    assert branch.changes() == {}
    store.close()


def test_a_handler_that_writes_another_store_fails_its_tx_and_changes_nothing(app, accounts, monkeypatch):
    alice, bob = accounts[:2]
    send_handler = registry.HANDLERS[bank.MSG_SEND_URL]

    def execute(state, ctx, message):  # a bank handler reaching into the market's book by its private code
        market._insert_order(state, market_pb2.Order(id=9, owner=message.from_address, work="process", slots=1,
                                                     remaining=1, max_price="1", escrow="0"))

    monkeypatch.setitem(registry.HANDLERS, bank.MSG_SEND_URL, MessageHandler(
        send_handler.proto, send_handler.signer, send_handler.check_stateless, execute))
    before = {store: list(app.store.iterate(store)) for store in registry.STORES}
    response = finalize(app, 2, [send(alice, bob.address, 10)])
    result = response.tx_results[0]
    assert (result.code, result.codespace, result.log) == (1, "undefined", "internal error: StoreAccessError")
    app.commit()
    assert {store: list(app.store.iterate(store)) for store in registry.STORES} == before


@pytest.mark.parametrize("section, error", [
    ({"heat": {"params": {"warm_millicelsius": "95000"}}}, heat.InvalidParams),
    ({"heat": {"params": "x"}}, GenesisError),
    ({"process": {"params": {"memory_rent_per_byte": "-1"}}}, process.InvalidParams),
    ({"process": {"processes": [{"id": "1", "owner": "x", "escrow": "5"}]}}, process.AccountingMismatch),
    ({"distribution": {}}, GenesisError),
])
def test_bad_heat_and_process_genesis_is_a_clear_error(tmp_path, accounts, section, error):
    application = registry.App(str(tmp_path / "data"))
    state = {**make_app_state(accounts), **section}
    with pytest.raises(GenesisError) as raised:
        application.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1,
                                                     app_state_bytes=json.dumps(state).encode()))
    assert isinstance(raised.value.__cause__ or raised.value, error)
    assert str(raised.value).startswith(("invalid genesis", "genesis app_state"))
    application.close()


def test_begin_block_hooks_see_the_block_and_end_block_hooks_run_in_registry_order(app, monkeypatch):
    seen = []
    monkeypatch.setattr(registry, "BEGIN_BLOCK", (("heat", lambda state, ctx: seen.append(("begin", state.store, ctx.txs))),))
    monkeypatch.setattr(registry, "END_BLOCK", tuple((store, lambda state, ctx, store=store: seen.append(("end", state.store)))
                                                     for store, _ in registry.END_BLOCK))
    finalize(app, 2, [])
    assert seen == [("begin", "heat", ()), ("end", "staking"), ("end", "market"), ("end", "process"), ("end", "inference")]


def test_tx_errors_of_every_module_carry_its_codespace():
    """Its CODESPACE, or its store's name for a submodule's own errors (ibc-go's `icacontroller`)."""
    for module in registry.MODULES:
        errors = [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, TxError) and value.__module__ == module.__name__]
        codespaces = {getattr(module, "CODESPACE", "sdk"), module.STORE}
        assert all(error.codespace in codespaces for error in errors), module.__name__
    assert Context(CHAIN_ID, 1, 0).verifier is None


def test_the_first_blocks_proposal_is_prepared_and_checked_from_the_genesis_state(tmp_path, accounts):
    """CometBFT asks for the first block's proposal after InitChain, before anything is committed."""
    application = registry.App(str(tmp_path / "data"))
    application.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1,
                                                 app_state_bytes=json.dumps(make_app_state(accounts)).encode()))
    tx = send(accounts[0], accounts[1].address, 5)
    prepared = application.prepare_proposal(abci.RequestPrepareProposal(txs=[tx], max_tx_bytes=1 << 20, height=1))
    assert list(prepared.txs) == [tx]
    checked = application.process_proposal(abci.RequestProcessProposal(txs=[tx], height=1))
    assert checked.status == abci.ResponseProcessProposal.ACCEPT
    application.close()
