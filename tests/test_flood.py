"""A flood of rejected txs through the dev chain's broadcast_tx_sync leaves its memory where it was.

Every kind of rejection a stranger can cause costs the node work, never memory it keeps: bad
signatures, fees below the minimum, unknown signers, wrong sequences and undecodable bytes.
"""

import asyncio
import base64
import os

import aiohttp
from chain import crypto
from chain.proto.cosmos.tx.v1beta1 import tx_pb2
from tests.helpers import MNEMONIC, Account, init_funded_home, send, start_dev_chain, stop_dev_chain

CHAIN_ID = "maxwell-cli-1"
ROUNDS = 5
TXS_PER_ROUND = 10_000
CONCURRENT_REQUESTS = 32
# what later rounds may add to the first's RSS: caches that fill with the strangers' addresses; before
# the rejected txs' decodings were dropped, each round of these kept about 25 MB
GROWTH_BOUND_MB = 12


def read_rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


def make_rejected_tx(alice: Account, i: int) -> bytes:
    kind = i % 5
    if kind == 0:
        raw = tx_pb2.TxRaw.FromString(send(alice, alice.address, 1 + i, chain_id=CHAIN_ID))
        raw.signatures[0] = bytes(64)
        return raw.SerializeToString()
    if kind == 1:
        return send(alice, alice.address, 1 + i, fee=1, chain_id=CHAIN_ID)
    if kind == 2:
        private_key = os.urandom(32)
        public_key = crypto.compute_public_key(private_key)
        stranger = Account("stranger", private_key, public_key, crypto.compute_address(public_key), 0)
        return send(stranger, alice.address, 5, chain_id=CHAIN_ID)
    if kind == 3:
        return send(alice, alice.address, 1 + i, sequence=1000 + i, chain_id=CHAIN_ID)
    return os.urandom(200)


async def broadcast(url: str, txs: list[bytes]) -> list[int]:
    limit = asyncio.Semaphore(CONCURRENT_REQUESTS)
    async with aiohttp.ClientSession() as session:
        async def one(request_id: int, tx: bytes) -> int:
            body = {"jsonrpc": "2.0", "id": request_id, "method": "broadcast_tx_sync",
                    "params": {"tx": base64.b64encode(tx).decode()}}
            async with limit, session.post(url, json=body) as response:
                return (await response.json())["result"]["code"]
        return await asyncio.gather(*(one(i, tx) for i, tx in enumerate(txs)))


def test_rounds_of_rejected_txs_leave_the_node_s_memory_bounded(tmp_path):
    init_funded_home(tmp_path)
    private_key = crypto.derive_private_key(MNEMONIC)
    public_key = crypto.compute_public_key(private_key)
    alice = Account("alice", private_key, public_key, crypto.compute_address(public_key), 0)
    process, url = start_dev_chain(tmp_path, block_time="500ms")
    try:
        rss = []
        for round_index in range(ROUNDS):
            txs = [make_rejected_tx(alice, round_index * TXS_PER_ROUND + i) for i in range(TXS_PER_ROUND)]
            codes = asyncio.run(broadcast(url, txs))
            assert all(codes), "a tx meant to be rejected was accepted"
            rss.append(read_rss_mb(process.pid))
        assert rss[-1] - rss[0] <= GROWTH_BOUND_MB, f"RSS per round (MB): {rss}"
    finally:
        stop_dev_chain(process)
