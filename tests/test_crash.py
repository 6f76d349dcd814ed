"""kill -9 the dev chain again and again while it commits blocks under load: nothing committed is lost."""

import random
import signal
import subprocess
import time

from chain import bank
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query
from chain.proto.cosmos.auth.v1beta1 import auth_pb2, query_pb2 as auth_query
from node import client
from tests.helpers import invoke, make_account, send, start_dev_chain

ROUNDS = 4
LOAD_SECONDS = 2.5
BLOCK_TIME = "100ms"
FUNDS = 10**12
CHAIN = "maxwell-crash-1"


def start(home) -> tuple[subprocess.Popen, client.Client]:
    process, url = start_dev_chain(home, block_time=BLOCK_TIME)
    return process, client.Client(url, timeout=5)


def query(rpc: client.Client, path: str, request, response_class):
    result = rpc.abci_query(path, request.SerializeToString())
    assert result.code == 0, result.log
    return response_class.FromString(result.value)


def sequence_of(rpc: client.Client, account) -> int:
    response = query(rpc, "/cosmos.auth.v1beta1.Query/Account", auth_query.QueryAccountRequest(address=account.bech32),
                     auth_query.QueryAccountResponse)
    return auth_pb2.BaseAccount.FromString(response.account.value).sequence


def balance_of(rpc: client.Client, address: str) -> int:
    response = query(rpc, "/cosmos.bank.v1beta1.Query/Balance",
                     bank_query.QueryBalanceRequest(address=address, denom="ujoule"), bank_query.QueryBalanceResponse)
    return int(response.balance.amount)


def test_kill_9_under_load_loses_no_committed_tx(tmp_path):
    from chain import crypto

    accounts = [make_account(f"load{i}", i) for i in range(6)]
    assert invoke("init", "--chain-id", CHAIN, "--home", tmp_path).exit_code == 0
    for account in accounts:
        assert invoke("genesis", "add-account", account.bech32, f"{FUNDS}ujoule", "--home", tmp_path).exit_code == 0
    addresses = [a.bech32 for a in accounts] + [crypto.encode_address(bank.FEE_COLLECTOR)]
    rng = random.Random(3)
    committed: dict[bytes, int] = {}
    block_hashes: dict[int, bytes] = {}
    last_height = 0

    for round_ in range(ROUNDS):
        process, rpc = start(tmp_path)
        try:
            # everything reported committed before the last kill is still there, unchanged
            for tx_hash, height in committed.items():
                found = rpc.tx(tx_hash)
                assert found is not None and (found.height, found.code) == (height, 0), tx_hash.hex()
            for height, block_hash in block_hashes.items():
                assert rpc.block(height).hash == block_hash
            status = rpc.status()
            assert status.latest_block_height >= last_height
            assert sum(balance_of(rpc, a) for a in addresses) == len(accounts) * FUNDS
            for account in accounts:
                account.sequence = sequence_of(rpc, account)

            pending: list[bytes] = []
            deadline = time.monotonic() + LOAD_SECONDS * rng.uniform(0.6, 1.4)
            while time.monotonic() < deadline:
                sender = rng.choice(accounts)
                result = rpc.broadcast_tx_sync(send(sender, rng.choice(accounts).address, rng.randint(1, 1000), chain_id=CHAIN))
                if result.code == 0:
                    sender.sequence += 1
                    pending.append(result.hash)
                for tx_hash in pending[-20:]:
                    found = rpc.tx(tx_hash) if tx_hash not in committed else None
                    if found is not None:
                        assert found.code == 0, found.log
                        committed[tx_hash] = found.height
            status = rpc.status()
            last_height = status.latest_block_height
            block_hashes[last_height] = rpc.block(last_height).hash
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()

    assert len(committed) > 20, f"only {len(committed)} txs were committed under load"
    process, rpc = start(tmp_path)
    try:
        assert all(rpc.tx(h) is not None for h in committed)
        assert rpc.wait_for_height(last_height + 2, timeout=30).latest_block_height > last_height
    finally:
        process.terminate()
        process.wait(timeout=20)
