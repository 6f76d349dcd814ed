"""IBC on the real App, without a counterparty: clients created and refused, a connection opened, and
the refusals of packets and transfers that have no channel — each with ibc-go's code and codespace,
and nothing changed. The relayed flows run against Hermes in tests/ibc."""

import base64
import hashlib
import json

import pytest
from google.protobuf.duration_pb2 import Duration

from chain.proto.ibc.applications.interchain_accounts.controller.v1 import query_pb2 as ica_query, tx_pb2 as ica_tx
from chain.proto.ibc.applications.interchain_accounts.v1 import packet_pb2 as ica_packet
from chain.proto.ibc.applications.transfer.v1 import tx_pb2 as transfer_tx
from chain.proto.ibc.applications.transfer.v2 import packet_pb2
from chain.proto.cosmos.ics23.v1 import proofs_pb2 as ics23_pb2
from chain.proto.ibc.core.channel.v1 import channel_pb2, tx_pb2 as channel_tx
from chain.proto.ibc.core.commitment.v1 import commitment_pb2
from chain.proto.ibc.core.client.v1 import query_pb2 as client_query, tx_pb2 as client_tx
from chain.proto.ibc.core.connection.v1 import connection_pb2, query_pb2 as connection_query, tx_pb2 as connection_tx
from chain.proto.ibc.lightclients.tendermint.v1 import tendermint_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain import bank, crypto
from chain.errors import GenesisError
from chain.state import Context, GasMeter, GasParams, State
from chain.store import Branch, Store
from chain.tx import pack_any
from ibc import channel as channels, core as ibc, ica_controller, ica_host, ics23, transfer
from tests.helpers import CHAIN_ID, GENESIS_TIME, Chain, events

OTHER_CHAIN = "other-1"
DAY = 24 * 3600


@pytest.fixture
def chain(tmp_path, accounts):
    chain = Chain(tmp_path / "data", accounts)
    yield chain
    chain.app.close()


def make_client_state(**changes) -> tendermint_pb2.ClientState:
    state = tendermint_pb2.ClientState(
        chain_id=OTHER_CHAIN, trust_level={"numerator": 1, "denominator": 3}, trusting_period={"seconds": DAY},
        unbonding_period={"seconds": 2 * DAY}, max_clock_drift={"seconds": 10},
        latest_height={"revision_number": 1, "revision_height": 5}, proof_specs=[ics23.IAVL_SPEC, ics23.TENDERMINT_SPEC],
        upgrade_path=["upgrade", "upgradedIBCState"])
    for name, value in changes.items():
        if name == "proof_specs":
            del state.proof_specs[:]
        elif name == "trust_level":
            state.trust_level.CopyFrom(tendermint_pb2.Fraction(**value))
        elif name == "trusting_period":
            state.trusting_period.CopyFrom(value)
        else:
            setattr(state, name, value)
    return state


def make_consensus_state() -> tendermint_pb2.ConsensusState:
    return tendermint_pb2.ConsensusState(timestamp={"seconds": GENESIS_TIME.seconds}, root={"hash": b"\x07" * 32},
                                         next_validators_hash=b"\x09" * 32)


def create_client(chain, account, client_state=None, consensus_state=None):
    message = client_tx.MsgCreateClient(client_state=pack_any(client_state or make_client_state()),
                                        consensus_state=pack_any(consensus_state or make_consensus_state()),
                                        signer=account.bech32)
    return chain.run(account, message)


def query(chain, path: str, request, response_class):
    response = chain.app.query(abci.RequestQuery(path=path, data=request.SerializeToString()))
    assert response.code == 0, response.log
    return response_class.FromString(response.value)


def ibc_records(chain) -> list:
    return list(chain.app.store.iterate("ibc")), list(chain.app.store.iterate("transfer"))


def test_a_client_is_created_with_its_events_and_answers_its_queries(chain, accounts):
    result, response = create_client(chain, accounts[0])
    assert result.code == 0, result.log
    assert events(response, "create_client") == [{"client_id": "07-tendermint-0", "client_type": "07-tendermint",
                                               "consensus_height": "1-5"}]
    assert {"module": "ibc_client"} in events(response, "message")
    answer = query(chain, "/ibc.core.client.v1.Query/ClientState",
                   client_query.QueryClientStateRequest(client_id="07-tendermint-0"), client_query.QueryClientStateResponse)
    assert tendermint_pb2.ClientState.FromString(answer.client_state.value) == make_client_state()
    heights = query(chain, "/ibc.core.client.v1.Query/ConsensusStateHeights",
                    client_query.QueryConsensusStateHeightsRequest(client_id="07-tendermint-0"),
                    client_query.QueryConsensusStateHeightsResponse)
    assert [(h.revision_number, h.revision_height) for h in heights.consensus_state_heights] == [(1, 5)]
    raw = chain.app.store.get("ibc", b"clients/07-tendermint-0/clientState")
    assert raw == pack_any(make_client_state()).SerializeToString()  # the ICS-24 path, holding an Any, as in ibc-go


@pytest.mark.parametrize("client_state, consensus_state, expected", [
    (make_client_state(trust_level={"numerator": 1, "denominator": 4}), None, (3, "client")),
    (make_client_state(proof_specs=[]), None, (3, "client")),
    (make_client_state(chain_id=""), None, (2, "07-tendermint")),
    (make_client_state(trusting_period=Duration(seconds=3 * DAY)), None, (3, "07-tendermint")),
    (None, tendermint_pb2.ConsensusState(timestamp={"seconds": 1}, next_validators_hash=b"\x09" * 32), (8, "client")),
    (None, tendermint_pb2.ConsensusState(timestamp={"seconds": 1}, root={"hash": b"\x01"}, next_validators_hash=b"\x09"),
     (8, "client")),
], ids=["trust level 1/4", "no proof specs", "no chain id", "trusting period over unbonding", "no root",
        "short validators hash"])
def test_a_bad_client_is_refused_with_ibc_gos_error_and_changes_nothing(chain, accounts, client_state,
                                                                      consensus_state, expected):
    before = ibc_records(chain)
    result, _ = create_client(chain, accounts[0], client_state, consensus_state)
    assert (result.code, result.codespace) == expected, result.log
    assert ibc_records(chain) == before


def test_a_connection_opens_on_an_active_client_and_not_on_a_missing_one(chain, accounts):
    alice = accounts[0]
    create_client(chain, alice)
    counterparty = connection_pb2.Counterparty(client_id="07-tendermint-3", prefix={"key_prefix": b"ibc"})
    result, response = chain.run(alice, connection_tx.MsgConnectionOpenInit(
        client_id="07-tendermint-0", counterparty=counterparty, signer=alice.bech32))
    assert result.code == 0, result.log
    assert events(response, "connection_open_init") == [{
        "connection_id": "connection-0", "client_id": "07-tendermint-0", "counterparty_client_id": "07-tendermint-3",
        "counterparty_connection_id": ""}]
    answer = query(chain, "/ibc.core.connection.v1.Query/Connection",
                   connection_query.QueryConnectionRequest(connection_id="connection-0"),
                   connection_query.QueryConnectionResponse)
    assert answer.connection.state == connection_pb2.STATE_INIT
    assert [v.identifier for v in answer.connection.versions] == ["1"]
    assert list(answer.connection.versions[0].features) == ["ORDER_ORDERED", "ORDER_UNORDERED"]
    result, _ = chain.run(alice, connection_tx.MsgConnectionOpenInit(client_id="07-tendermint-9",
                                                                      counterparty=counterparty, signer=alice.bech32))
    assert (result.code, result.codespace) == (4, "client"), result.log


def test_packets_and_transfers_without_a_channel_are_refused_and_pay_nothing(chain, accounts):
    alice = accounts[0]
    before = ibc_records(chain)
    balance = chain.balance(alice.address)
    transfer_message = transfer_tx.MsgTransfer(
        source_port="transfer", source_channel="channel-0", token={"denom": "ujoule", "amount": "10"},
        sender=alice.bech32, receiver="cosmos1receiver", timeout_timestamp=GENESIS_TIME.seconds * 10**9 + 10**12)
    result, _ = chain.run(alice, transfer_message)
    assert (result.code, result.codespace) == (3, "channel"), result.log
    packet = channel_pb2.Packet(sequence=1, source_port="transfer", source_channel="channel-0",
                                destination_port="transfer", destination_channel="channel-0", data=b"{}",
                                timeout_timestamp=1)
    result, _ = chain.run(alice, channel_tx.MsgRecvPacket(packet=packet, proof_commitment=b"\x01",
                                                          proof_height={"revision_number": 1, "revision_height": 3},
                                                          signer=alice.bech32))
    assert (result.code, result.codespace) == (3, "channel"), result.log
    zero = transfer_tx.MsgTransfer()
    zero.CopyFrom(transfer_message)
    zero.token.amount = "0"
    result, _ = chain.run(alice, zero)
    assert (result.code, result.codespace) == (10, "sdk"), result.log
    assert ibc_records(chain) == before
    assert chain.balance(alice.address) < balance  # the fees only, nothing escrowed
    assert not transfer.get_total_escrow(chain.app.store, "ujoule")


def test_ics20_encodings_are_ibc_gos():
    """Packet data as ibc-go's GetBytes writes it (sorted, compact, empty memo left out, HTML escaped), and the
    voucher of ATOM over Osmosis's channel-0 — the denom every Osmosis user knows."""
    data = packet_pb2.FungibleTokenPacketData(denom="transfer/channel-0/uatom", amount="100", sender="a<b", receiver="c&d")
    assert transfer.encode_packet_data(data) == (
        b'{"amount":"100","denom":"transfer/channel-0/uatom","receiver":"c\\u0026d","sender":"a\\u003cb"}')
    trace = transfer.parse_denom_trace("transfer/channel-0/uatom")
    assert (trace.path, trace.base_denom) == ("transfer/channel-0", "uatom")
    assert transfer.compute_ibc_denom(trace) == "ibc/27394FB092D2ECCD56123C74F36E4C1F926001CEADA9CA97EA622B25F41E5EB2"
    odd = transfer.parse_denom_trace("transfer/channel-1/gamm/pool/1")
    assert (odd.path, odd.base_denom) == ("transfer/channel-1", "gamm/pool/1")
    assert transfer.decode_packet_data(transfer.encode_packet_data(data)) == data
    assert channels.compute_error_ack(transfer.InvalidAmountError("x")) == \
        b'{"error":"ABCI code: 5: error handling packet: see events for details"}'
    assert transfer.compute_escrow_address("transfer", "channel-0") == hashlib.sha256(
        b"ics20-1\x00transfer/channel-0").digest()[:20]


def make_packet(data: bytes, source_channel: str = "channel-7") -> channel_pb2.Packet:
    return channel_pb2.Packet(sequence=1, source_port="transfer", source_channel=source_channel,
                              destination_port="transfer", destination_channel="channel-0", data=data,
                              timeout_timestamp=1)


def receive(chain, data: bytes, source_channel: str = "channel-7"):
    """transfer's OnRecvPacket on a branch of the chain's state: (ack, success, branch)."""
    branch = Branch(chain.app.store)
    state = State(branch, GasMeter(), GasParams(), transfer.STORE)
    ctx = Context(CHAIN_ID, chain.height + 1, GENESIS_TIME.seconds * 10**9)
    ack, success = transfer.on_recv_packet(state, ctx, make_packet(data, source_channel), "relayer")
    return ack, success, branch


def packet_data(**fields) -> bytes:
    return transfer.encode_packet_data(packet_pb2.FungibleTokenPacketData(**{
        "denom": "uatom", "amount": "100", "sender": "cosmos1sender", "receiver": RECEIVER, **fields}))


RECEIVER = crypto.encode_address(b"\x05" * 20)


@pytest.mark.parametrize("data, code", [
    (b"not json", 12),
    (b'{"denom":"uatom","amount":"1","sender":"a","receiver":"b","extra":"x"}', 12),
    (packet_data(amount="0"), 5),
    (packet_data(amount="-5"), 5),
    (packet_data(amount=str(2**256)), 5),
    (packet_data(amount="1.5"), 5),
    (packet_data(receiver=""), 5),
    (packet_data(receiver="not-an-address"), 1),
    (packet_data(denom="transfer/"), 3),
    (packet_data(denom="transfer/channel-7/ujoule"), 5),  # ours coming home, but nothing was escrowed
], ids=["not json", "unknown field", "zero amount", "negative amount", "over 256 bits", "fraction",
        "blank receiver", "receiver not an address", "blank base denom", "unescrowed home token"])
def test_a_bad_ics20_packet_gets_ibc_gos_error_ack(chain, data, code):
    ack, success, _ = receive(chain, data)
    assert not success
    assert ack == ('{"error":"ABCI code: %d: error handling packet: see events for details"}' % code).encode()


def test_a_good_ics20_packet_mints_the_voucher_with_its_trace_and_metadata(chain):
    ack, success, branch = receive(chain, packet_data())
    assert success and ack == b'{"result":"AQ=="}'
    voucher = transfer.compute_ibc_denom(transfer.parse_denom_trace("transfer/channel-0/uatom"))
    assert bank.get_balance(branch, crypto.decode_address(RECEIVER), voucher) == 100
    assert bank.get_supply(branch, voucher) == 100
    assert bank.has_denom_metadata(branch, voucher)
    stored = transfer.get_denom_trace(branch, bytes.fromhex(voucher.split("/")[1]))
    assert (stored.path, stored.base_denom) == ("transfer/channel-0", "uatom")


def test_an_error_ack_or_a_timeout_refunds_the_escrow_and_a_success_keeps_it(chain, accounts):
    alice = accounts[0]
    escrow = transfer.compute_escrow_address("transfer", "channel-0")
    branch = Branch(chain.app.store)
    state = State(branch, GasMeter(), GasParams(), transfer.STORE)
    ctx = Context(CHAIN_ID, chain.height + 1, GENESIS_TIME.seconds * 10**9)
    data = transfer.encode_packet_data(packet_pb2.FungibleTokenPacketData(
        denom="ujoule", amount="300", sender=alice.bech32, receiver="cosmos1x"))
    sent = channel_pb2.Packet(sequence=1, source_port="transfer", source_channel="channel-0", destination_port="transfer",
                              destination_channel="channel-9", data=data, timeout_timestamp=1)
    start = bank.get_balance(branch, alice.address, "ujoule")
    for outcome in ("success", "error", "timeout"):
        transfer.process_escrow(state, ctx, alice.address, escrow, "ujoule", 300)
        if outcome == "timeout":
            transfer.on_timeout_packet(state, ctx, sent, "relayer")
        else:
            ack = b'{"result":"AQ=="}' if outcome == "success" else channels.compute_error_ack(transfer.InvalidAmountError(""))
            transfer.on_acknowledgement_packet(state, ctx, sent, ack, "relayer")
    assert bank.get_balance(branch, escrow, "ujoule") == 300 == transfer.get_total_escrow(branch, "ujoule")
    assert bank.get_balance(branch, alice.address, "ujoule") == start - 300
    with pytest.raises(transfer.UnknownIbcRequestError):
        transfer.on_acknowledgement_packet(state, ctx, sent, b"garbage", "relayer")


def open_init(chain, alice) -> None:
    create_client(chain, alice)
    counterparty = connection_pb2.Counterparty(client_id="07-tendermint-3", prefix={"key_prefix": b"ibc"})
    result, _ = chain.run(alice, connection_tx.MsgConnectionOpenInit(client_id="07-tendermint-0",
                                                                      counterparty=counterparty, signer=alice.bech32))
    assert result.code == 0, result.log


def proof_height(height: int) -> dict:
    return {"revision_number": 1, "revision_height": height}


def test_handshake_steps_out_of_order_and_bad_proofs_are_refused_and_change_nothing(chain, accounts):
    alice = accounts[0]
    open_init(chain, alice)
    before = ibc_records(chain)
    proof = commitment_pb2.MerkleProof(proofs=[ics23_pb2.CommitmentProof()]).SerializeToString()
    cases = [
        (connection_tx.MsgConnectionOpenConfirm(connection_id="connection-0", proof_ack=proof,
                                                proof_height=proof_height(5), signer=alice.bech32), (6, "connection")),
        (connection_tx.MsgConnectionOpenAck(connection_id="connection-9", counterparty_connection_id="connection-1",
                                            version={"identifier": "1", "features": ["ORDER_UNORDERED"]},
                                            proof_try=proof, proof_height=proof_height(5), signer=alice.bech32),
         (3, "connection")),
        (connection_tx.MsgConnectionOpenAck(connection_id="connection-0", counterparty_connection_id="connection-1",
                                            version={"identifier": "1", "features": ["ORDER_UNORDERED"]},
                                            proof_try=proof, proof_height=proof_height(9), signer=alice.bech32),
         (26, "client")),  # a proof above the client's latest height
        (connection_tx.MsgConnectionOpenAck(connection_id="connection-0", counterparty_connection_id="connection-1",
                                            version={"identifier": "1", "features": ["ORDER_UNORDERED"]},
                                            proof_try=proof, proof_height=proof_height(5), signer=alice.bech32),
         (2, "commitment")),  # a proof that proves nothing against the stored root
        (connection_tx.MsgConnectionOpenAck(connection_id="connection-0", counterparty_connection_id="connection-1",
                                            version={"identifier": "1", "features": ["ORDER_UNORDERED"]},
                                            proof_try=b"\xff\xff", proof_height=proof_height(5), signer=alice.bech32),
         (4, "commitment")),  # not a MerkleProof at all
        (connection_tx.MsgConnectionOpenAck(connection_id="connection-0", counterparty_connection_id="connection-1",
                                            version={"identifier": "2", "features": ["ORDER_UNORDERED"]},
                                            proof_try=proof, proof_height=proof_height(5), signer=alice.bech32),
         (9, "connection")),  # a version never offered
        (channel_tx.MsgChannelOpenInit(port_id="transfer", channel=channel_pb2.Channel(
            state=channel_pb2.STATE_INIT, ordering=channel_pb2.ORDER_UNORDERED, counterparty={"port_id": "transfer"},
            connection_hops=["connection-5"], version="ics20-1"), signer=alice.bech32), (3, "connection")),
        (channel_tx.MsgChannelOpenInit(port_id="transfer", channel=channel_pb2.Channel(
            state=channel_pb2.STATE_INIT, ordering=channel_pb2.ORDER_ORDERED, counterparty={"port_id": "transfer"},
            connection_hops=["connection-0"], version="ics20-1"), signer=alice.bech32), (6, "channel")),
        (channel_tx.MsgChannelOpenInit(port_id="nothing", channel=channel_pb2.Channel(
            state=channel_pb2.STATE_INIT, ordering=channel_pb2.ORDER_UNORDERED, counterparty={"port_id": "transfer"},
            connection_hops=["connection-0"], version="ics20-1"), signer=alice.bech32), (3, "port")),
        (channel_tx.MsgChannelOpenAck(port_id="transfer", channel_id="channel-0", counterparty_channel_id="channel-1",
                                      counterparty_version="ics20-1", proof_try=proof, proof_height=proof_height(5),
                                      signer=alice.bech32), (3, "channel")),
    ]
    for message, expected in cases:
        result, _ = chain.run(alice, message)
        assert (result.code, result.codespace) == expected, (type(message).__name__, result.log)
    assert ibc_records(chain) == before


def test_a_channel_opens_on_an_init_connection_and_its_transfer_waits_for_it_to_open(chain, accounts):
    """ibc-go lets a channel's INIT step run on a connection still in INIT; a transfer needs an OPEN channel."""
    alice = accounts[0]
    open_init(chain, alice)
    result, response = chain.run(alice, channel_tx.MsgChannelOpenInit(port_id="transfer", channel=channel_pb2.Channel(
        state=channel_pb2.STATE_INIT, ordering=channel_pb2.ORDER_UNORDERED, counterparty={"port_id": "transfer"},
        connection_hops=["connection-0"]), signer=alice.bech32))
    assert result.code == 0, result.log
    assert events(response, "channel_open_init") == [{
        "port_id": "transfer", "channel_id": "channel-0", "counterparty_port_id": "transfer",
        "counterparty_channel_id": "", "connection_id": "connection-0", "version": "ics20-1"}]
    result, _ = chain.run(alice, transfer_tx.MsgTransfer(
        source_port="transfer", source_channel="channel-0", token={"denom": "ujoule", "amount": "10"},
        sender=alice.bech32, receiver="cosmos1receiver", timeout_timestamp=GENESIS_TIME.seconds * 10**9 + 10**12))
    assert (result.code, result.codespace) == (5, "channel"), result.log
    assert not transfer.get_total_escrow(chain.app.store, "ujoule")


# --- MsgUpdateClient through the App: bad headers are refused with ibc-go's errors ----------------

def make_tendermint_client(signers, trusting_seconds: int = DAY):
    """A 07-tendermint client of OTHER_CHAIN trusting `signers` at 1-5, as of genesis time."""
    from tests.test_lightclient import make_validator_set
    from ibc import lightclient as lc
    client_state = make_client_state(trusting_period=Duration(seconds=trusting_seconds))
    if trusting_seconds < DAY:
        client_state.unbonding_period.seconds = 2 * trusting_seconds
    consensus_state = tendermint_pb2.ConsensusState(
        timestamp={"seconds": GENESIS_TIME.seconds}, root={"hash": b"\x07" * 32},
        next_validators_hash=lc.compute_validator_set_hash(make_validator_set(signers)))
    return client_state, consensus_state


def make_update(signers, height: int, time_seconds: int, signer, signing=None, corrupt=False, app_hash=b"\x01" * 32):
    from tests.test_lightclient import make_signed_header, make_validator_set
    signed = make_signed_header(signers, signers, height, time_seconds * 10**9, signing, chain_id=OTHER_CHAIN,
                                app_hash=app_hash)
    if corrupt:
        first = signed.commit.signatures[0]
        first.signature = bytes([first.signature[0] ^ 1]) + first.signature[1:]
    header = tendermint_pb2.Header(signed_header=signed, validator_set=make_validator_set(signers),
                                   trusted_height={"revision_number": 1, "revision_height": 5},
                                   trusted_validators=make_validator_set(signers))
    return client_tx.MsgUpdateClient(client_id="07-tendermint-0", client_message=pack_any(header), signer=signer)


@pytest.mark.parametrize("case, expected, cause", [
    ("bad signature", "InvalidSignatureError", "wrong signature"),
    ("too little power", "NotEnoughVotingPowerError", "insufficient voting power: got 40, needed more than 66"),
    ("from the future", "HeaderFromFutureError", "time from the future"),
    ("outside the trusting period", "ClientExpiredError", "status Expired"),
    ("for a frozen client", "ClientExpiredError", "status Frozen"),  # ibc-go: ErrClientNotActive either way
])
def test_a_bad_header_in_msg_update_client_is_refused_and_changes_nothing(chain, accounts, case, expected, cause):
    from ibc import lightclient as lc
    from tests.test_lightclient import POWERS, make_signers
    alice = accounts[0]
    signers = make_signers(POWERS)
    client_state, consensus_state = make_tendermint_client(signers, trusting_seconds=3 if "trusting" in case else DAY)
    assert create_client(chain, alice, client_state, consensus_state)[0].code == 0
    now = GENESIS_TIME.seconds + chain.height + 1  # the next block's time
    if "trusting" in case:
        for _ in range(4):
            chain.block([])
        now = GENESIS_TIME.seconds + chain.height + 1
    if "frozen" in case:  # two valid headers for one height: misbehaviour freezes the client
        first, second = (tendermint_pb2.Header.FromString(make_update(signers, 6, now - 1, alice.bech32, app_hash=h)
                                                          .client_message.value) for h in (b"\x01" * 32, b"\x02" * 32))
        evidence = tendermint_pb2.Misbehaviour(client_id="07-tendermint-0", header_1=first, header_2=second)
        result, _ = chain.run(alice, client_tx.MsgSubmitMisbehaviour(client_id="07-tendermint-0",
                                                                    misbehaviour=pack_any(evidence), signer=alice.bech32))
        assert result.code == 0, result.log
        now = GENESIS_TIME.seconds + chain.height + 1
    update = {"bad signature": dict(corrupt=True), "too little power": dict(signing=[0, 3]),
              "from the future": dict(time_seconds=now + 60)}.get(case, {})
    message = make_update(signers, 6, update.pop("time_seconds", now - 1), alice.bech32, **update)
    before = ibc_records(chain)
    result, _ = chain.run(alice, message)
    error = getattr(lc, expected)
    assert (result.code, result.codespace) == (error.code, error.codespace), result.log
    assert cause in result.log  # ibc-go wraps these causes in one error code, as here
    assert ibc_records(chain) == before
    if case == "bad signature":  # the same header, signed right, updates the client
        result, response = chain.run(alice, make_update(signers, 6, now, alice.bech32))
        assert result.code == 0, result.log
        assert events(response, "update_client")[0]["consensus_heights"] == "1-6"


# --- ICS-27 controller messages: ibc-go's errors, nothing changed ---------------------------------

def ica_records(chain) -> tuple:
    return tuple(tuple(chain.app.store.iterate(store)) for store in ("ibc", ica_controller.STORE, ica_host.STORE))


def send_tx(owner: str, connection_id: str = "connection-0", **changes) -> ica_tx.MsgSendTx:
    message = ica_tx.MsgSendTx(owner=owner, connection_id=connection_id, relative_timeout=10**12, packet_data={
        "type": ica_packet.TYPE_EXECUTE_TX, "data": b"opaque to the controller"})
    for name, value in changes.items():
        if name == "type":
            message.packet_data.type = value
        else:
            setattr(message, name, value)
    return message


def test_an_interchain_account_registers_on_a_connection_and_bad_requests_get_ibc_gos_errors(chain, accounts):
    alice = accounts[0]
    open_init(chain, alice)
    port_id = "icacontroller-" + alice.bech32
    before = ica_records(chain)
    cases = [
        (ica_tx.MsgRegisterInterchainAccount(owner=alice.bech32, connection_id="connection-7"), (3, "connection")),
        (ica_tx.MsgRegisterInterchainAccount(owner=alice.bech32, connection_id="connection-0", version="ics27-1"),
         (2, "interchainaccounts")),  # a version that is not the Metadata JSON
        (ica_tx.MsgRegisterInterchainAccount(owner=alice.bech32, connection_id="connection-0",
                                             ordering=channel_pb2.ORDER_NONE_UNSPECIFIED,
                                             version='{"version":"ics27-2","controller_connection_id":"connection-0",'
                                                     '"encoding":"proto3","tx_type":"sdk_multi_msg"}'),
         (12, "interchainaccounts")),
        (send_tx(alice.bech32), (11, "interchainaccounts")),  # no channel, so no account yet
        (send_tx(alice.bech32, relative_timeout=0), (8, "ibc")),
        (send_tx(alice.bech32, type=ica_packet.TYPE_UNSPECIFIED), (6, "interchainaccounts")),
        (send_tx(alice.bech32, connection_id="not a connection"), (2, "host")),
    ]
    for message, expected in cases:
        result, _ = chain.run(alice, message)
        assert (result.code, result.codespace) == expected, (type(message).__name__, result.log)
    assert ica_records(chain) == before

    result, response = chain.run(alice, ica_tx.MsgRegisterInterchainAccount(owner=alice.bech32,
                                                                            connection_id="connection-0"))
    assert result.code == 0, result.log
    opened = events(response, "channel_open_init")
    assert [(e["port_id"], e["channel_id"], e["counterparty_port_id"]) for e in opened] == [
        (port_id, "channel-0", "icahost")]
    assert json.loads(opened[0]["version"]) == {  # the Metadata JSON the host answers with its address
        "version": "ics27-1", "controller_connection_id": "connection-0", "host_connection_id": "",
        "address": "", "encoding": "proto3", "tx_type": "sdk_multi_msg"}
    response = chain.app.query(abci.RequestQuery(
        path="/ibc.applications.interchain_accounts.controller.v1.Query/InterchainAccount",
        data=ica_query.QueryInterchainAccountRequest(owner=alice.bech32, connection_id="connection-0")
        .SerializeToString()))
    assert (response.code, response.codespace) == (38, "sdk"), response.log  # not open yet: no address
    result, _ = chain.run(alice, send_tx(alice.bech32))
    assert (result.code, result.codespace) == (11, "interchainaccounts"), result.log


def test_the_host_refuses_to_open_or_close_a_channel_itself(chain, accounts):
    alice = accounts[0]
    open_init(chain, alice)
    before = ica_records(chain)
    result, _ = chain.run(alice, channel_tx.MsgChannelOpenInit(port_id="icahost", channel=channel_pb2.Channel(
        state=channel_pb2.STATE_INIT, ordering=channel_pb2.ORDER_ORDERED,
        counterparty={"port_id": "icacontroller-" + alice.bech32}, connection_hops=["connection-0"]),
        signer=alice.bech32))
    assert (result.code, result.codespace) == (5, "interchainaccounts"), result.log
    assert ica_records(chain) == before


# --- genesis: ibc-go's GenesisState -----------------------------------------------------------------

def test_ibc_genesis_exports_in_ibc_gos_shape_and_imports_to_the_same_records(chain, accounts, tmp_path):
    alice = accounts[0]
    open_init(chain, alice)
    chain.ok(alice, channel_tx.MsgChannelOpenInit(port_id="transfer", channel=channel_pb2.Channel(
        state=channel_pb2.STATE_INIT, ordering=channel_pb2.ORDER_UNORDERED, counterparty={"port_id": "transfer"},
        connection_hops=["connection-0"], version="ics20-1"), signer=alice.bech32))
    section = chain.app.export_genesis()["ibc"]
    clients, connections, channels = (section[f"{name}_genesis"] for name in ("client", "connection", "channel"))
    assert [c["client_id"] for c in clients["clients"]] == ["07-tendermint-0"]
    assert clients["clients"][0]["client_state"]["@type"] == "/ibc.lightclients.tendermint.v1.ClientState"
    assert clients["clients_consensus"][0]["consensus_states"][0]["height"] == {"revision_number": "1",
                                                                                 "revision_height": "5"}
    metadata = [base64.b64decode(m["key"]) for m in clients["clients_metadata"][0]["client_metadata"]]
    assert metadata == [b"consensusStates/1-5/processedHeight", b"consensusStates/1-5/processedTime",
                        b"iterateConsensusStates" + (1).to_bytes(8, "big") + (5).to_bytes(8, "big")]
    assert clients["next_client_sequence"] == "1" and clients["params"]["allowed_clients"]
    assert [(c["id"], c["state"]) for c in connections["connections"]] == [("connection-0", "STATE_INIT")]
    assert connections["client_connection_paths"] == [{"client_id": "07-tendermint-0", "paths": ["connection-0"]}]
    assert [(c["port_id"], c["channel_id"], c["state"]) for c in channels["channels"]] == [
        ("transfer", "channel-0", "STATE_INIT")]
    assert channels["send_sequences"] == [{"port_id": "transfer", "channel_id": "channel-0", "sequence": "1"}]
    assert channels["next_channel_sequence"] == "1"

    copy = Branch(Store(str(tmp_path / "copy"), (ibc.STORE,)))
    ibc.init_chain(State(copy, GasMeter(), GasParams(), ibc.STORE), json.loads(json.dumps(section)), None)
    assert list(copy.iterate(ibc.STORE)) == list(chain.app.store.iterate(ibc.STORE))


@pytest.mark.parametrize("section, cause", [
    ({"client_genesis": {"clients": "not a list"}}, "client_genesis"),
    ({"client_genesis": {"clients_metadata": [{"client_id": "07-tendermint-0", "client_metadata": [
        {"key": base64.b64encode(b"clientState").decode(), "value": ""}]}]}}, "no metadata of client"),
    ({"connection_genesis": {"params": {"max_expected_time_per_block": "1"}}}, "connection_genesis.params"),
    (["records"], "must be an object"),
], ids=["malformed", "metadata over the client state", "other params", "not an object"])
def test_a_bad_ibc_genesis_is_refused(tmp_path, section, cause):
    state = State(Branch(Store(str(tmp_path / "bad"), (ibc.STORE,))), GasMeter(), GasParams(), ibc.STORE)
    with pytest.raises(GenesisError, match=cause):
        ibc.init_chain(state, section, None)
