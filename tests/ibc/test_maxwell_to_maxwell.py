"""Two maxwell dev chains and Hermes between them: clients, a connection and a transfer channel made
by `hermes create channel`, JOULE sent across and back with every packet relayed by Hermes."""

import base64
import hashlib
import json
import subprocess
import time
import urllib.request

import nacl.signing
import pytest

from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2
from chain.proto.ibc.applications.transfer.v1 import query_pb2 as transfer_query_pb2
from chain.proto.cosmos.tx.v1beta1 import tx_pb2
from chain.proto.cosmos.ics23.v1 import proofs_pb2 as ics23_pb2
from chain.proto.ibc.core.channel.v1 import channel_pb2, tx_pb2 as channel_tx_pb2
from chain.proto.ibc.core.commitment.v1 import commitment_pb2
from chain.proto.ibc.core.client.v1 import query_pb2 as client_query_pb2, tx_pb2 as client_tx_pb2
from chain.proto.ibc.lightclients.tendermint.v1 import tendermint_pb2
from chain.proto.tendermint.types import validator_pb2
from chain.tx import pack_any
from ibc import tendermint
from node import client, keyring, txclient
from tests import cometbft_json

from tests.helpers import compute_free_port, init_funded_home, invoke, start_dev_chain, \
    stop_dev_chain
from tests.ibc.hermes import HERMES, RELAYER_FUNDS, Chain, Hermes, create_relayer_key, get_balance, measure_relaying

CHAIN_IDS = ("maxwell-a-1", "maxwell-b-1")
FEE = 5000  # the CLI's default: 200,000 gas at the chain's 0.025ujoule


def compute_voucher(port: str, channel: str, denom: str) -> str:
    return "ibc/" + hashlib.sha256(f"{port}/{channel}/{denom}".encode()).hexdigest().upper()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ibc")
    chains, processes, mnemonic = [], [], None
    try:
        for chain_id in CHAIN_IDS:
            home = directory / chain_id
            home.mkdir()
            init_funded_home(home, chain_id=chain_id)
            if mnemonic is None:
                address, mnemonic = create_relayer_key(home)
            else:
                assert invoke("keys", "add", "relayer", "--recover", "--keyring-backend", "test", "--home", home,
                              input=mnemonic + "\n").exit_code == 0
            assert invoke("genesis", "add-account", "relayer", f"{RELAYER_FUNDS}ujoule", "--keyring-backend", "test",
                          "--home", home).exit_code == 0
            grpc = f"127.0.0.1:{compute_free_port()}"
            process, url = start_dev_chain(home, block_time="300ms", grpc=grpc)
            processes.append(process)
            chains.append(Chain(chain_id, url, f"http://{grpc}", home))
        hermes = Hermes(directory, chains)
        for chain in chains:
            hermes.add_key(chain.chain_id, mnemonic)
        yield hermes, chains, address
    finally:
        for process in processes:
            stop_dev_chain(process)


def test_hermes_health_check_finds_only_what_is_true(network):
    """maxwell is no Cosmos SDK (or CometBFT) build: Hermes finds none of their versions in its build
    dependencies (the node info lists maxwell's own, as they are) and says so, which marks the chain "not
    healthy"; every other check (RPC, tx indexing, network id, the node's minimum gas price over ABCI,
    historical entries) passes."""
    hermes, chains, _ = network
    completed = subprocess.run([str(HERMES), "--config", str(hermes.config), "health-check"], capture_output=True,
                               text=True, timeout=120, env=hermes.env)
    output = completed.stdout + completed.stderr
    problems = [line for line in output.splitlines() if " WARN " in line or " ERROR " in line]
    honest = ("version", "health check failed", "chain is not healthy", "some Hermes features may not work")
    assert problems and all(any(words in line for words in honest) for line in problems), "\n".join(problems)
    assert not any(words in output for words in ("gas price", "historical", "tx indexing", "network identifier",
                                                 "unknown query path"))


def test_hermes_opens_a_transfer_channel_and_relays_joule_there_and_back(network):
    hermes, (a, b), relayer = network
    began = time.monotonic()
    created = hermes.run("create", "channel", "--a-chain", a.chain_id, "--b-chain", b.chain_id, "--a-port",
                         "transfer", "--b-port", "transfer", "--new-client-connection", "--yes")
    print(f"channel created in {time.monotonic() - began:.1f} s: {json.dumps(created)[:400]}")
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    before_a = get_balance(a, relayer, "ujoule")
    hermes.run("tx", "ft-transfer", "--dst-chain", b.chain_id, "--src-chain", a.chain_id, "--src-port", "transfer",
               "--src-channel", "channel-0", "--amount", "1000", "--denom", "ujoule", "--timeout-seconds", "120")
    hermes.run("tx", "packet-recv", "--dst-chain", b.chain_id, "--src-chain", a.chain_id, "--src-port", "transfer",
               "--src-channel", "channel-0")
    hermes.run("tx", "packet-ack", "--dst-chain", a.chain_id, "--src-chain", b.chain_id, "--src-port", "transfer",
               "--src-channel", "channel-0")
    assert get_balance(b, relayer, voucher) == 1000
    assert get_balance(a, relayer, "ujoule") < before_a - 1000


def assert_escrow_backs_the_vouchers(a: Chain, b: Chain) -> None:
    """Each side's JOULE in the channel's escrow = its total escrow record = its vouchers outstanding on the
    other side."""
    for source, destination in ((a, b), (b, a)):
        source_rpc, destination_rpc = client.Client(source.rpc), client.Client(destination.rpc)
        escrow = source_rpc.query(transfer_query_pb2.QueryEscrowAddressRequest(port_id="transfer", channel_id="channel-0"),
                                  transfer_query_pb2.QueryEscrowAddressResponse).escrow_address
        total = source_rpc.query(transfer_query_pb2.QueryTotalEscrowForDenomRequest(denom="ujoule"),
                                 transfer_query_pb2.QueryTotalEscrowForDenomResponse).amount.amount
        vouchers = destination_rpc.query(bank_query_pb2.QuerySupplyOfRequest(
            denom=compute_voucher("transfer", "channel-0", "ujoule")), bank_query_pb2.QuerySupplyOfResponse).amount.amount
        assert get_balance(source, escrow, "ujoule") == int(total) == int(vouchers), (source.chain_id, total, vouchers)


def transfer(chain: Chain, receiver: str, amount: str, *flags: str) -> dict:
    result = invoke("tx", "ibc-transfer", "transfer", "alice", "transfer", "channel-0", receiver, amount, *flags,
                    "--node", chain.rpc, "--home", chain.home, "--keyring-backend", "test", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def clear(hermes: Hermes, chain: Chain) -> None:
    hermes.run("clear", "packets", "--chain", chain.chain_id, "--port", "transfer", "--channel", "channel-0")


def get_alice(chain: Chain) -> str:
    return json.loads(invoke("keys", "show", "alice", "--keyring-backend", "test", "--home", chain.home,
                             "-o", "json").stdout)["address"]


def query_json(chain: Chain, *args: str):
    result = invoke("query", "ibc", *args, "--node", chain.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_joule_goes_over_with_the_cli_comes_back_and_the_escrow_follows(network):
    hermes, (a, b), _ = network
    alice = get_alice(a)
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    escrow = query_json(a, "escrow-address", "transfer", "channel-0")["escrow_address"]
    escrowed, home_balance = get_balance(a, escrow, "ujoule"), get_balance(a, alice, "ujoule")
    sent = transfer(a, alice, "5000ujoule")
    assert sent["code"] == 0 and sent["sequence"]
    assert get_balance(a, escrow, "ujoule") == escrowed + 5000
    clear(hermes, a)
    assert get_balance(b, alice, voucher) == 5000
    assert {"denom": voucher, "path": "transfer/channel-0", "base_denom": "ujoule"} in query_json(b, "denom-traces")

    transfer(b, alice, f"2000{voucher}")
    clear(hermes, b)
    assert get_balance(b, alice, voucher) == 3000
    assert get_balance(a, escrow, "ujoule") == escrowed + 3000
    assert get_balance(a, alice, "ujoule") == home_balance - 5000 - FEE + 2000
    assert_escrow_backs_the_vouchers(a, b)


def test_a_replayed_packet_changes_nothing(network):
    """The MsgRecvPacket Hermes relayed, sent again by someone else: ibc-go's redundant relay, a success that
    answers NOOP (no recv or ack event) and pays nobody twice."""
    _, (a, b), _ = network
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    found, _ = client.Client(b.rpc).search_txs("recv_packet.packet_sequence='1'")
    assert found, "no relayed packet 1 on b"
    relayed = tx_pb2.TxBody.FromString(tx_pb2.TxRaw.FromString(found[0].tx).body_bytes)
    recv = next(channel_tx_pb2.MsgRecvPacket.FromString(m.value) for m in relayed.messages
                if m.type_url == "/ibc.core.channel.v1.MsgRecvPacket")
    signer = txclient.load_signer(client.Client(b.rpc), keyring.get_private_key(b.home, "test", "alice"))
    recv.signer = signer.address
    before = {address: get_balance(b, address, voucher) for address in (get_alice(b), network[2])}
    _, result = txclient.execute_messages(signer, [recv])
    assert result.code == 0 and not [e for e in result.events if e.type in ("recv_packet", "write_acknowledgement")]
    assert {address: get_balance(b, address, voucher) for address in before} == before


def get_sent_packet(chain: Chain, sequence: int) -> channel_pb2.Packet:
    """The packet `chain` sent on transfer/channel-0 with `sequence`, from its send_packet event."""
    found, _ = client.Client(chain.rpc).search_txs(f"send_packet.packet_sequence='{sequence}'")
    event = next(dict(e.attributes) for r in found for e in r.events if e.type == "send_packet"
                 and dict(e.attributes)["packet_src_channel"] == "channel-0")
    revision, height = (int(part) for part in event["packet_timeout_height"].split("-"))
    return channel_pb2.Packet(
        sequence=sequence, source_port="transfer", source_channel="channel-0", destination_port="transfer",
        destination_channel="channel-0", data=bytes.fromhex(event["packet_data_hex"]),
        timeout_height={"revision_number": revision, "revision_height": height},
        timeout_timestamp=int(event["packet_timeout_timestamp"]))


def submit(signer, message) -> tuple[int, str, str]:
    """(code, codespace, log) of a tx of one message, whether CheckTx or the block refuses it."""
    checked = signer.rpc.broadcast_tx_sync(txclient.compute_signed_tx(signer, [message], txclient.DEFAULT_GAS))
    if checked.code:
        return checked.code, checked.codespace, checked.log
    signer.sequence += 1
    result = signer.rpc.wait_for_tx(checked.hash, 30)
    return result.code, result.codespace, result.log


def prove_commitment(hermes: Hermes, a: Chain, b: Chain, sequence: int) -> tuple[bytes, list[int]]:
    """b's client of a updated to a's latest height, and a's proof of its packet commitment at that
    height (what a relayer sends): (the MerkleProof, the client's consensus heights, latest last)."""
    time.sleep(1)  # a's block after the one with the commitment, for the header to prove against
    hermes.run("update", "client", "--host-chain", b.chain_id, "--client", "07-tendermint-0")
    heights = sorted(h.revision_height for h in client.Client(b.rpc).query(
        client_query_pb2.QueryConsensusStateHeightsRequest(client_id="07-tendermint-0"),
        client_query_pb2.QueryConsensusStateHeightsResponse).consensus_state_heights)
    proven = client.Client(a.rpc).abci_query(
        "store/ibc/key", f"commitments/ports/transfer/channels/channel-0/sequences/{sequence}".encode(),
        height=heights[-1] - 1, prove=True)
    assert proven.value, "no commitment to prove"
    return commitment_pb2.MerkleProof(proofs=[ics23_pb2.CommitmentProof.FromString(op.data)
                                              for op in proven.proof_ops]).SerializeToString(), heights


def test_a_proof_for_another_packet_at_another_height_or_after_the_timeout_is_refused(network):
    hermes, (a, b), _ = network
    alice_b = get_alice(b)
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    signer = txclient.load_signer(client.Client(b.rpc), keyring.get_private_key(b.home, "test", "alice"))

    def recv(sequence: int, proof: bytes, proof_height: int) -> channel_tx_pb2.MsgRecvPacket:
        return channel_tx_pb2.MsgRecvPacket(packet=get_sent_packet(a, sequence), proof_commitment=proof,
                                            proof_height={"revision_number": 1, "revision_height": proof_height},
                                            signer=signer.address)

    def get_sequences() -> list[int]:
        return hermes.run("query", "packet", "commitments", "--chain", a.chain_id, "--port", "transfer",
                          "--channel", "channel-0")["result"]["seqs"]

    transfer(a, alice_b, "11ujoule")
    transfer(a, alice_b, "13ujoule")
    first, second = get_sequences()[-2:]
    proof, heights = prove_commitment(hermes, a, b, first)
    before = get_balance(b, alice_b, voucher)
    for message, what in ((recv(second, proof, heights[-1]), "another packet's path"),
                          (recv(first, proof, heights[-2]), "another height's root")):
        code, codespace, log = submit(signer, message)
        assert (code, codespace) == (2, "commitment"), (what, code, codespace, log)
    assert get_balance(b, alice_b, voucher) == before
    assert submit(signer, recv(first, proof, heights[-1]))[0] == 0
    assert get_balance(b, alice_b, voucher) == before + 11
    clear(hermes, a)
    assert get_balance(b, alice_b, voucher) == before + 24

    transfer(a, alice_b, "17ujoule", "--packet-timeout-seconds", "1")
    late = get_sequences()[-1]
    time.sleep(1)
    proof, heights = prove_commitment(hermes, a, b, late)
    code, codespace, log = submit(signer, recv(late, proof, heights[-1]))
    assert (code, codespace) == (40, "channel") and "past the packet's timeout" in log, (code, codespace, log)
    clear(hermes, a)  # times it out on a
    assert get_sequences() == [] and get_balance(b, alice_b, voucher) == before + 24


def test_a_transfer_whose_timeout_passes_is_refunded(network):
    hermes, (a, b), _ = network
    alice = get_alice(a)
    before = get_balance(a, alice, "ujoule")
    sent = transfer(a, alice, "777ujoule", "--packet-timeout-seconds", "1")
    time.sleep(3)  # the timeout passes on b (its blocks are 0.3 s apart) before anything relays the packet
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    received = get_balance(b, alice, voucher)
    clear(hermes, a)
    assert get_balance(b, alice, voucher) == received, "a timed-out packet was received"
    assert get_balance(a, alice, "ujoule") == before - FEE, f"not refunded: {sent}"


def test_hermes_start_relays_200_transfers_both_ways_with_none_lost(network):
    hermes, (a, b), relayer = network
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    on_b, on_a = get_balance(b, relayer, voucher), get_balance(a, relayer, voucher)

    def is_relayed() -> bool:
        return get_balance(b, relayer, voucher) == on_b + 1000 and get_balance(a, relayer, voucher) == on_a + 1000

    elapsed = measure_relaying(hermes, [
        ("--dst-chain", destination.chain_id, "--src-chain", source.chain_id, "--src-port", "transfer", "--src-channel",
         "channel-0", "--amount", "10", "--denom", "ujoule", "--number-msgs", "100", "--timeout-seconds", "600")
        for source, destination in ((a, b), (b, a))], is_relayed)
    assert get_balance(b, relayer, voucher) == on_b + 1000
    assert get_balance(a, relayer, voucher) == on_a + 1000
    print(f"hermes start relayed 200 transfers in {elapsed:.1f} s: {200 / elapsed:.1f} packets/s")
    assert_escrow_backs_the_vouchers(a, b)


def get_rpc(chain: Chain, path: str) -> dict:
    with urllib.request.urlopen(chain.rpc + path, timeout=10) as response:
        return json.loads(response.read())["result"]


def compute_header(chain: Chain, height: int, trusted: int) -> tendermint_pb2.Header:
    """The header a relayer sends to move a client of `chain` from `trusted` to `height`."""
    signed = cometbft_json.signed_header_from_json(get_rpc(chain, f"/commit?height={height}")["signed_header"])
    return tendermint_pb2.Header(
        signed_header=signed,
        validator_set=cometbft_json.validator_set_from_json(get_rpc(chain, f"/validators?height={height}")),
        trusted_height={"revision_number": 1, "revision_height": trusted},
        trusted_validators=cometbft_json.validator_set_from_json(get_rpc(chain, f"/validators?height={trusted + 1}")))


def compute_fork(chain: Chain, header: tendermint_pb2.Header) -> tendermint_pb2.Header:
    """The same height with another app hash, signed with the chain's own validator key: a double sign."""
    key = json.loads((chain.home / "config" / "priv_validator_key.json").read_text())
    signer = nacl.signing.SigningKey(base64.b64decode(key["priv_key"]["value"])[:32])
    fork = tendermint_pb2.Header()
    fork.CopyFrom(header)
    fork.signed_header.header.app_hash = b"\xee" * 32
    commit = fork.signed_header.commit
    commit.block_id.hash = tendermint.compute_header_hash(fork.signed_header.header)
    for index, signature in enumerate(commit.signatures):
        if signature.block_id_flag == validator_pb2.BLOCK_ID_FLAG_COMMIT:
            vote = tendermint.compute_commit_vote(commit, index)
            signature.signature = signer.sign(tendermint.compute_vote_sign_bytes(chain.chain_id, vote)).signature
    return fork


def get_client_status(chain: Chain) -> str:
    rpc = client.Client(chain.rpc)
    return rpc.query(client_query_pb2.QueryClientStatusRequest(client_id="07-tendermint-0"),
                     client_query_pb2.QueryClientStatusResponse).status


def test_misbehaviour_of_chain_a_freezes_chain_bs_client_and_it_takes_no_more_updates(network):
    """Runs last: it freezes b's client of a."""
    hermes, (a, b), _ = network
    rpc = client.Client(b.rpc)
    state = rpc.query(client_query_pb2.QueryClientStateRequest(client_id="07-tendermint-0"),
                      client_query_pb2.QueryClientStateResponse)
    trusted = tendermint_pb2.ClientState.FromString(state.client_state.value).latest_height.revision_height
    height = client.Client(a.rpc).status().latest_block_height - 1
    real = compute_header(a, height, trusted)
    misbehaviour = tendermint_pb2.Misbehaviour(client_id="07-tendermint-0", header_1=compute_fork(a, real),
                                               header_2=real)
    signer = txclient.load_signer(rpc, keyring.get_private_key(b.home, "test", "alice"))
    assert get_client_status(b) == "Active"
    bogus = tendermint_pb2.Misbehaviour()
    bogus.CopyFrom(misbehaviour)
    bogus.header_1.signed_header.commit.signatures[0].signature = b"\x01" * 64
    with pytest.raises(txclient.TxRejected) as refused:
        txclient.execute_messages(signer, [client_tx_pb2.MsgSubmitMisbehaviour(
            client_id="07-tendermint-0", misbehaviour=pack_any(bogus), signer=signer.address)])
    assert "07-tendermint" in str(refused.value)
    assert get_client_status(b) == "Active"
    txclient.execute_messages(signer, [client_tx_pb2.MsgSubmitMisbehaviour(
        client_id="07-tendermint-0", misbehaviour=pack_any(misbehaviour), signer=signer.address)])
    assert get_client_status(b) == "Frozen"
    update = hermes.run("update", "client", "--host-chain", b.chain_id, "--client", "07-tendermint-0", check=False)
    assert update.get("status") != "success", update
