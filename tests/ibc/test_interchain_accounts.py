"""Interchain accounts (ICS-27) between maxwell and simd v8.8.0 over ORDERED channels, relayed by Hermes.

maxwell as controller: the handshake maxwell starts and simd's host finishes, txs that simd runs for a
maxwell account, an error acknowledgement in order, a timeout that closes the channel, the close
confirmed on simd, a packet timed out on the closed channel (MsgTimeoutOnClose), the account reopened.

maxwell as host: simd's controller opens an account on maxwell, which runs the sends it is sent with
the packet data maxwell's CLI generates; a message the account did not sign and undecodable data get
error acknowledgements; a packet out of order is refused; simd's timeout closes the channel, maxwell
confirms the close, a packet behind it times out on close, and simd reopens the same account."""

import hashlib
import json
import time

import pytest

from chain import crypto
from node.client import Client
from tests.helpers import ALICE, invoke
from tests.ibc.hermes import get_balance, relay_dev_chain_and
from tests.ibc.simd import STAKE, Simd

MAXWELL_ID, SIMD_ID = "maxwell-a-1", "simd-3"
PORT = f"icacontroller-{ALICE}"
HOST_PORT = "icahost"
FUNDS = 1_000_000
RECIPIENT = crypto.encode_address(hashlib.sha256(b"ica recipient").digest()[:20], "cosmos")
# simd v8.8.0's CLI sends "0.38.11" (its CometBFT's version) when --version is left out: the metadata is spelt out
SIMD_VERSION = json.dumps({"version": "ics27-1", "controller_connection_id": "connection-0",
                           "host_connection_id": "connection-0", "address": "", "encoding": "proto3",
                           "tx_type": "sdk_multi_msg"})
HOSTED_RECIPIENT = crypto.encode_address(hashlib.sha256(b"hosted ica recipient").digest()[:20])


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with relay_dev_chain_and(tmp_path_factory.mktemp("ibc-ica"), MAXWELL_ID, Simd, SIMD_ID, "simd") as network:
        hermes = network[0]
        hermes.run("create", "connection", "--a-chain", MAXWELL_ID, "--b-chain", SIMD_ID)
        yield network


def ica_tx(maxwell, *args: str) -> dict:
    result = invoke("tx", "ica", "controller", *args, "--keyring-backend", "test", "--home", maxwell.home,
                    "--node", maxwell.rpc, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def get_channels(maxwell) -> list[dict]:
    result = invoke("query", "ibc", "channels", "--node", maxwell.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def get_channel(maxwell, channel_id: str, port_id: str = PORT) -> dict:
    return next(c for c in get_channels(maxwell) if c["port_id"] == port_id and c["channel_id"] == channel_id)


def get_simd_channel(simd, channel_id: str, port_id: str = HOST_PORT) -> dict:
    return json.loads(simd.run("query", "ibc", "channel", "end", port_id, channel_id, "--node", simd.rpc,
                               "-o", "json"))["channel"]


def get_account(maxwell) -> str:
    result = invoke("query", "ica", "controller", "interchain-account", ALICE, "connection-0", "--node", maxwell.rpc,
                    "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["address"]


def open_account(hermes, maxwell, channel_id: str) -> None:
    """alice registers on an ORDERED channel; Hermes carries the handshake to simd's host and back."""
    registered = ica_tx(maxwell, "register", "alice", "connection-0", "--ordering", "ORDER_ORDERED")
    assert (registered["port_id"], registered["channel_id"]) == (PORT, channel_id)
    finish_handshake(hermes, MAXWELL_ID, SIMD_ID, PORT, channel_id, lambda: channel_id)


def finish_handshake(hermes, controller: str, host: str, port: str, channel_id: str, find_host_channel) -> str:
    """Hermes's Try on the host, Ack on the controller and Confirm on the host for the controller's channel
    `port`/`channel_id` in INIT; `find_host_channel()` names the host's end once Try made it: that name."""
    ends = ("--dst-connection", "connection-0")
    hermes.run("tx", "chan-open-try", "--dst-chain", host, "--src-chain", controller, *ends, "--dst-port",
               HOST_PORT, "--src-port", port, "--src-channel", channel_id)
    host_channel = find_host_channel()
    hermes.run("tx", "chan-open-ack", "--dst-chain", controller, "--src-chain", host, *ends, "--dst-port", port,
               "--src-port", HOST_PORT, "--dst-channel", channel_id, "--src-channel", host_channel)
    hermes.run("tx", "chan-open-confirm", "--dst-chain", host, "--src-chain", controller, *ends, "--dst-port",
               HOST_PORT, "--src-port", port, "--dst-channel", host_channel, "--src-channel", channel_id)
    return host_channel


def write_send(simd, account: str, amount: int, name: str) -> str:
    """Packet data for a bank send from the account, as simd's own CLI makes it: a file for send-tx."""
    message = {"@type": "/cosmos.bank.v1beta1.MsgSend", "from_address": account, "to_address": RECIPIENT,
               "amount": [{"denom": STAKE, "amount": str(amount)}]}
    path = simd.home / f"{name}.json"
    path.write_text(simd.run("tx", "interchain-accounts", "host", "generate-packet-data", json.dumps(message),
                             "--encoding", "proto3"))
    return str(path)


def relay(hermes, channel_id: str, sequence: int) -> None:
    hermes.run("tx", "packet-recv", "--dst-chain", SIMD_ID, "--src-chain", MAXWELL_ID, "--src-port", PORT,
               "--src-channel", channel_id, "--packet-sequences", str(sequence))


def get_commitments(hermes, channel_id: str) -> list[int]:
    return hermes.run("query", "packet", "commitments", "--chain", MAXWELL_ID, "--port", PORT, "--channel",
                      channel_id)["result"]["seqs"]


def get_messages_of(maxwell, events: str) -> list[str]:
    """The message types of the txs on maxwell whose events match."""
    result = invoke("query", "txs", "--events", events, "--node", maxwell.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [message for tx in json.loads(result.stdout)["txs"] for message in tx["messages"]]


def test_simd_hosts_an_account_that_maxwell_controls_over_an_ordered_channel(network):
    hermes, maxwell, simd, _ = network
    open_account(hermes, maxwell, "channel-0")
    assert get_channel(maxwell, "channel-0")["ordering"] == "ORDER_ORDERED"
    assert get_channel(maxwell, "channel-0")["state"] == "STATE_OPEN"
    account = get_account(maxwell)
    assert account.startswith("cosmos1")
    simd.tx("bank", "send", "relayer", account, f"{FUNDS}{STAKE}")

    assert ica_tx(maxwell, "send-tx", "alice", "connection-0", write_send(simd, account, 1234, "send"))["sequence"] == "1"
    hermes.run("clear", "packets", "--chain", MAXWELL_ID, "--port", PORT, "--channel", "channel-0")
    assert simd.get_balance(RECIPIENT, STAKE) == 1234
    assert simd.get_balance(account, STAKE) == FUNDS - 1234
    assert get_commitments(hermes, "channel-0") == []

    # more than the account holds: simd acknowledges with an error, in order, and the channel stays open
    ica_tx(maxwell, "send-tx", "alice", "connection-0", write_send(simd, account, 10 * FUNDS, "too-much"))
    hermes.run("clear", "packets", "--chain", MAXWELL_ID, "--port", PORT, "--channel", "channel-0")
    assert simd.get_balance(RECIPIENT, STAKE) == 1234
    assert get_commitments(hermes, "channel-0") == []
    assert get_channel(maxwell, "channel-0")["state"] == "STATE_OPEN"


def test_the_account_refuses_a_user_close(network):
    hermes, maxwell, simd, _ = network
    refused = hermes.run("tx", "chan-close-init", "--dst-chain", MAXWELL_ID, "--src-chain", SIMD_ID,
                         "--dst-connection", "connection-0", "--dst-port", PORT, "--src-port", HOST_PORT,
                         "--dst-channel", "channel-0", "--src-channel", "channel-0", check=False)
    assert refused.get("status") != "success"
    assert "user cannot close channel" in json.dumps(refused), refused
    assert get_channel(maxwell, "channel-0")["state"] == "STATE_OPEN"


def test_a_timeout_closes_the_ordered_channel_and_a_packet_behind_it_times_out_on_close(network):
    hermes, maxwell, simd, _ = network
    account = get_account(maxwell)
    late = ica_tx(maxwell, "send-tx", "alice", "connection-0", write_send(simd, account, 5, "late"),
                  "--relative-packet-timeout", str(2 * 10**9))["sequence"]
    behind = ica_tx(maxwell, "send-tx", "alice", "connection-0", write_send(simd, account, 7, "behind"))["sequence"]
    assert (late, behind) == ("3", "4")
    time.sleep(4)
    relay(hermes, "channel-0", 3)  # MsgTimeout on maxwell: an ORDERED channel closes
    assert get_channel(maxwell, "channel-0")["state"] == "STATE_CLOSED"
    assert get_commitments(hermes, "channel-0") == [4]
    closed_by = "timeout_packet.packet_sequence='3' AND channel_closed.packet_channel_ordering='ORDER_ORDERED'"
    assert "/ibc.core.channel.v1.MsgTimeout" in get_messages_of(maxwell, closed_by)
    assert get_simd_channel(simd, "channel-0")["state"] == "STATE_OPEN"

    hermes.run("tx", "chan-close-confirm", "--dst-chain", SIMD_ID, "--src-chain", MAXWELL_ID, "--dst-connection",
               "connection-0", "--dst-port", HOST_PORT, "--src-port", PORT, "--dst-channel", "channel-0",
               "--src-channel", "channel-0")
    assert get_simd_channel(simd, "channel-0")["state"] == "STATE_CLOSED"

    relay(hermes, "channel-0", 4)  # simd's end is closed: MsgTimeoutOnClose on maxwell
    assert get_commitments(hermes, "channel-0") == []
    assert "/ibc.core.channel.v1.MsgTimeoutOnClose" in get_messages_of(maxwell, "timeout_packet.packet_sequence='4'")
    assert simd.get_balance(RECIPIENT, STAKE) == 1234, "a timed-out packet ran on simd"
    refused = invoke("tx", "ica", "controller", "send-tx", "alice", "connection-0", write_send(simd, account, 1, "x"),
                     "--keyring-backend", "test", "--home", maxwell.home, "--node", maxwell.rpc, "--yes")
    assert refused.exit_code == 1 and "failed to retrieve active channel" in refused.stderr, refused.stderr


def test_registering_again_reopens_the_same_account(network):
    hermes, maxwell, simd, _ = network
    account = get_account(maxwell)
    open_account(hermes, maxwell, "channel-1")
    assert get_account(maxwell) == account
    ica_tx(maxwell, "send-tx", "alice", "connection-0", write_send(simd, account, 100, "again"))
    hermes.run("clear", "packets", "--chain", MAXWELL_ID, "--port", PORT, "--channel", "channel-1")
    assert simd.get_balance(RECIPIENT, STAKE) == 1334


# --- maxwell as host ------------------------------------------------------------------------------

def controller_port(simd) -> str:
    return f"icacontroller-{simd.relayer}"


def get_event(result: dict, kind: str, key: str) -> str:
    return next(attribute["value"] for event in result["events"] if event["type"] == kind
                for attribute in event["attributes"] if attribute["key"] == key)


def open_hosted_account(hermes, maxwell, simd) -> tuple[str, str]:
    """simd's relayer registers an account on maxwell over an ORDERED channel and Hermes carries the
    handshake: (simd's channel, maxwell's)."""
    registered = simd.tx("interchain-accounts", "controller", "register", "connection-0", "--ordering", "ORDER_ORDERED",
                         "--version", SIMD_VERSION)
    simd_channel, port = get_event(registered, "channel_open_init", "channel_id"), controller_port(simd)
    channel = finish_handshake(hermes, SIMD_ID, MAXWELL_ID, port, simd_channel, lambda: next(
        c["channel_id"] for c in get_channels(maxwell)
        if c["port_id"] == HOST_PORT and c["counterparty"] == f"{port}/{simd_channel}"))
    return simd_channel, channel


def get_hosted_account(simd) -> str:
    return json.loads(simd.run("query", "interchain-accounts", "controller", "interchain-account", simd.relayer,
                               "connection-0", "--node", simd.rpc, "-o", "json"))["address"]


def write_hosted_send(simd, sender: str, amount: int, name: str) -> str:
    """Packet data for a send from `sender` on maxwell, as maxwell's CLI generates it, in a file for simd."""
    message = {"@type": "/cosmos.bank.v1beta1.MsgSend", "from_address": sender, "to_address": HOSTED_RECIPIENT,
               "amount": [{"denom": "ujoule", "amount": str(amount)}]}
    result = invoke("tx", "interchain-accounts", "host", "generate-packet-data", json.dumps(message))
    assert result.exit_code == 0, result.stderr
    path = simd.home / f"{name}.json"
    path.write_text(result.stdout)
    return str(path)


def send_hosted(simd, path: str, timeout_ns: int = 600 * 10**9) -> str:
    """simd's controller sends the packet data in `path`: its sequence."""
    sent = simd.tx("interchain-accounts", "controller", "send-tx", "connection-0", path,
                   "--relative-packet-timeout", str(timeout_ns))
    return get_event(sent, "send_packet", "packet_sequence")


def get_simd_commitments(hermes, simd, channel_id: str) -> list[int]:
    return hermes.run("query", "packet", "commitments", "--chain", SIMD_ID, "--port", controller_port(simd),
                      "--channel", channel_id)["result"]["seqs"]


def get_ics27_outcomes(maxwell, channel_id: str, kind: str = "ics27_packet") -> list[tuple[str, str]]:
    """(success, error) of each ICS-27 packet event of `kind` on the channel, in order (a failed packet's
    events are kept as ibc-go keeps them, their type prefixed `ibccallbackerror-`)."""
    results, _ = Client(maxwell.rpc).search_txs(f"{kind}.host_channel_id='{channel_id}'", per_page=100)
    return [(attributes["success"], attributes.get("error", "")) for result in results for event in result.events
            if event.type == kind for attributes in [dict(event.attributes)]]


def test_maxwell_hosts_an_account_that_simd_controls(network):
    hermes, maxwell, simd, _ = network
    simd_channel, channel = open_hosted_account(hermes, maxwell, simd)
    assert get_channel(maxwell, channel, HOST_PORT)["state"] == "STATE_OPEN"
    assert get_simd_channel(simd, simd_channel, controller_port(simd))["ordering"] == "ORDER_ORDERED"
    account = get_hosted_account(simd)
    assert account.startswith("mxw1") and account != ALICE
    sent = invoke("tx", "send", "alice", account, f"{FUNDS}ujoule", "--keyring-backend", "test", "--home",
                  maxwell.home, "--node", maxwell.rpc, "-o", "json")
    assert sent.exit_code == 0, sent.stderr

    send_hosted(simd, write_hosted_send(simd, account, 1234, "hosted-send"))
    hermes.run("clear", "packets", "--chain", SIMD_ID, "--port", controller_port(simd), "--channel", simd_channel)
    assert get_balance(maxwell, HOSTED_RECIPIENT, "ujoule") == 1234
    assert get_balance(maxwell, account, "ujoule") == FUNDS - 1234
    assert get_simd_commitments(hermes, simd, simd_channel) == []

    # alice's tokens in a message the account did not sign, and data that is no CosmosTx: error acks in order
    alice_before = get_balance(maxwell, ALICE, "ujoule")
    send_hosted(simd, write_hosted_send(simd, ALICE, 99, "not-signed"))
    garbage = simd.home / "garbage.json"
    garbage.write_text(json.dumps({"type": "TYPE_EXECUTE_TX", "data": "bm90IGEgQ29zbW9zVHg=", "memo": ""}))
    send_hosted(simd, str(garbage))
    hermes.run("clear", "packets", "--chain", SIMD_ID, "--port", controller_port(simd), "--channel", simd_channel)
    assert get_simd_commitments(hermes, simd, simd_channel) == []
    assert get_balance(maxwell, ALICE, "ujoule") == alice_before
    assert get_balance(maxwell, HOSTED_RECIPIENT, "ujoule") == 1234
    assert get_ics27_outcomes(maxwell, channel) == [("true", "")]
    failed = get_ics27_outcomes(maxwell, channel, "ibccallbackerror-ics27_packet")
    assert [success for success, _ in failed] == ["false", "false"], failed
    assert "unexpected signer address" in failed[0][1] and "cannot unmarshal CosmosTx" in failed[1][1], failed
    assert get_channel(maxwell, channel, HOST_PORT)["state"] == "STATE_OPEN"


def test_a_hosted_packet_out_of_order_is_refused_and_a_timeout_closes_the_channel_on_both_ends(network):
    hermes, maxwell, simd, _ = network
    account, port = get_hosted_account(simd), controller_port(simd)
    hosting = next(c for c in get_channels(maxwell) if c["port_id"] == HOST_PORT and c["state"] == "STATE_OPEN")
    channel, simd_channel = hosting["channel_id"], hosting["counterparty"].split("/")[1]
    late = send_hosted(simd, write_hosted_send(simd, account, 5, "hosted-late"), timeout_ns=3 * 10**9)
    behind = send_hosted(simd, write_hosted_send(simd, account, 7, "hosted-behind"))
    assert int(behind) == int(late) + 1
    refused = hermes.run("tx", "packet-recv", "--dst-chain", MAXWELL_ID, "--src-chain", SIMD_ID, "--src-port", port,
                         "--src-channel", simd_channel, "--packet-sequences", behind, check=False)
    assert "packet sequence ≠ next receive sequence" in json.dumps(refused, ensure_ascii=False), refused
    assert get_balance(maxwell, HOSTED_RECIPIENT, "ujoule") == 1234
    assert get_simd_commitments(hermes, simd, simd_channel) == [int(late), int(behind)]

    time.sleep(4)
    hermes.run("tx", "packet-recv", "--dst-chain", MAXWELL_ID, "--src-chain", SIMD_ID, "--src-port", port,
               "--src-channel", simd_channel, "--packet-sequences", late)  # MsgTimeout on simd closes its end
    assert get_simd_channel(simd, simd_channel, port)["state"] == "STATE_CLOSED"
    assert get_channel(maxwell, channel, HOST_PORT)["state"] == "STATE_OPEN"
    hermes.run("tx", "chan-close-confirm", "--dst-chain", MAXWELL_ID, "--src-chain", SIMD_ID, "--dst-connection",
               "connection-0", "--dst-port", HOST_PORT, "--src-port", port, "--dst-channel", channel,
               "--src-channel", simd_channel)
    assert get_channel(maxwell, channel, HOST_PORT)["state"] == "STATE_CLOSED"
    hermes.run("tx", "packet-recv", "--dst-chain", MAXWELL_ID, "--src-chain", SIMD_ID, "--src-port", port,
               "--src-channel", simd_channel, "--packet-sequences", behind)  # MsgTimeoutOnClose on simd
    assert get_simd_commitments(hermes, simd, simd_channel) == []
    assert get_balance(maxwell, HOSTED_RECIPIENT, "ujoule") == 1234, "a timed-out packet ran on maxwell"

    _, reopened = open_hosted_account(hermes, maxwell, simd)
    assert reopened != channel and get_hosted_account(simd) == account
