"""The real app behind `maxwell start`, driven over the ABCI socket exactly as CometBFT drives it."""

import json
import os
import random
import signal
import subprocess
import time

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from chain.proto.tendermint.abci import types_pb2 as abci
from tests.abci_client import ABCIClient
from tests.helpers import CHAIN_ID, GENESIS_TIME, MAXWELL, compute_free_port, make_account, make_app_state, send

HEIGHTS = 12


def start_app(home) -> tuple[subprocess.Popen, str]:
    address = f"tcp://127.0.0.1:{compute_free_port()}"
    process = subprocess.Popen(
        [str(MAXWELL), "start", "--home", str(home), "--abci", address, "--grpc", "off", "--rest", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with ABCIClient(address, timeout=2) as client:
                client.echo(message="up")
            return process, address
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
    process.kill()
    raise TimeoutError("maxwell start did not come up")


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    process.send_signal(sig)
    process.wait(timeout=20)


def make_blocks(accounts, seed: int) -> list[list[bytes]]:
    """Valid sends mixed with replays, garbage and overdrafts, as a faulty proposer might include them."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(HEIGHTS):
        txs = []
        for _ in range(rng.randint(0, 6)):
            sender = rng.choice(accounts)
            kind = rng.random()
            if kind < 0.7:
                txs.append(send(sender, rng.choice(accounts).address, rng.randint(1, 10**6)))
                sender.sequence += 1
            elif kind < 0.8:
                txs.append(send(sender, rng.choice(accounts).address, 10**15))
                sender.sequence += 1  # fails in its message, but the fee and sequence are spent
            elif kind < 0.9 and txs:
                txs.append(txs[-1])
            else:
                txs.append(rng.randbytes(rng.randint(0, 80)))
        blocks.append(txs)
    return blocks


def run_height(client: ABCIClient, height: int, txs: list[bytes]) -> bytes:
    time_ = Timestamp(seconds=GENESIS_TIME.seconds + height)
    proposal = client.prepare_proposal(txs=txs, max_tx_bytes=1 << 20, height=height, time=time_)
    assert client.process_proposal(txs=proposal.txs, height=height, time=time_).status == abci.ResponseProcessProposal.ACCEPT
    return client.finalize_block(txs=proposal.txs, height=height, time=time_).app_hash


@pytest.fixture
def accounts():
    return [make_account(name, i) for i, name in enumerate(["alice", "bob", "carol", "dave"])]


def test_two_instances_same_blocks_same_app_hash_and_replay_after_crash(tmp_path, accounts):
    genesis = json.dumps(make_app_state(accounts)).encode()
    blocks = make_blocks(accounts, seed=7)
    processes = [start_app(tmp_path / name) for name in ("a", "b")]
    try:
        clients = [ABCIClient(address) for _, address in processes]
        hashes = [[c.init_chain(chain_id=CHAIN_ID, initial_height=1, time=GENESIS_TIME, app_state_bytes=genesis).app_hash]
                  for c in clients]
        for height, txs in enumerate(blocks, start=1):
            for client, row in zip(clients, hashes):
                row.append(run_height(client, height, txs))
                client.commit()
        assert hashes[0] == hashes[1]
        assert len(set(hashes[0])) > HEIGHTS // 2  # the state really moved

        # instance a crashes after FinalizeBlock of the next height, before Commit
        extra = [send(accounts[0], accounts[1].address, 99)]
        expected = run_height(clients[1], HEIGHTS + 1, extra)
        assert run_height(clients[0], HEIGHTS + 1, extra) == expected
        for client in clients:
            client.close()
        stop(processes[0][0], signal.SIGKILL)
        processes[0] = start_app(tmp_path / "a")
        with ABCIClient(processes[0][1]) as client:
            info = client.info()
            assert (info.last_block_height, info.last_block_app_hash) == (HEIGHTS, hashes[1][-1])
            assert run_height(client, HEIGHTS + 1, extra) == expected
            client.commit()
            assert client.info().last_block_height == HEIGHTS + 1
    finally:
        for process, _ in processes:
            if process.poll() is None:
                stop(process)


def test_sigterm_stops_cleanly_and_state_survives(tmp_path, accounts):
    process, address = start_app(tmp_path / "node")
    with ABCIClient(address) as client:
        client.init_chain(chain_id=CHAIN_ID, initial_height=1, time=GENESIS_TIME,
                          app_state_bytes=json.dumps(make_app_state(accounts)).encode())
        app_hash = run_height(client, 1, [send(accounts[0], accounts[1].address, 5)])
        client.commit()
    stop(process)
    assert process.returncode == 0, process.stderr.read().decode()
    process, address = start_app(tmp_path / "node")
    try:
        with ABCIClient(address) as client:
            info = client.info()
            assert (info.last_block_height, info.last_block_app_hash) == (1, app_hash)
            bad = client.check_tx(tx=b"\x00garbage")
            assert bad.code == 2 and bad.codespace == "sdk"
            assert client.info().last_block_app_hash == app_hash
    finally:
        stop(process)


def test_malformed_genesis_is_reported_and_the_server_survives(tmp_path):
    process, address = start_app(tmp_path / "node")
    try:
        with ABCIClient(address) as client:
            with pytest.raises(Exception, match="genesis"):
                client.init_chain(chain_id=CHAIN_ID, initial_height=1, app_state_bytes=b"{not json")
        with ABCIClient(address) as client:
            assert client.info().last_block_height == 0
    finally:
        stop(process)
    assert os.path.isdir(tmp_path / "node" / "data")
