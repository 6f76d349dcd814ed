"""The 4-validator CometBFT localnet under a cosmjs load: blocks/s and tx/s.

Baseline: the same network's block rate with no load, measured first in the same run. The load is
load.mjs (stock cosmjs): each validator's key signs TXS_PER_SENDER MsgSends and broadcasts them to
its own node; tx/s counts the txs committed from the first block that holds one to the last.
"""

import json
import subprocess
import tempfile
import time
from pathlib import Path

from localnet.network import Localnet, wait_until
from node.cometbft_json import parse_time_ns

TXS_PER_SENDER = 250
IDLE_SECONDS = 10.0
LOAD = Path(__file__).resolve().parents[1] / "cosmjs" / "load.mjs"


def get_block_time(node, height: int) -> float:
    return parse_time_ns(node.get(f"/block?height={height}")["block"]["header"]["time"]) / 1e9


def measure_idle(node) -> float:
    first = node.get_height()
    time.sleep(IDLE_SECONDS)
    last = node.get_height()
    return (last - first) / (get_block_time(node, last) - get_block_time(node, first))


def measure_load(network: Localnet) -> tuple[float, float, int]:
    senders = [{"mnemonic": key["mnemonic"], "rpc": node.rpc} for key, node in zip(network.keys, network.nodes)]
    recipient = network.keys[0]["address"]
    run = subprocess.run(["node", str(LOAD), str(TXS_PER_SENDER), recipient], input=json.dumps(senders),
                         capture_output=True, text=True, timeout=600, cwd=LOAD.parent)
    if run.returncode:
        raise RuntimeError(f"load.mjs failed: {run.stderr.strip()[-500:]}")
    hashes = json.loads(run.stdout)["hashes"]
    node = network.nodes[0]

    def find_heights():
        return [int(node.get(f"/tx?hash=0x{h}")["height"]) for h in hashes]

    heights = wait_until(find_heights, 300, f"{len(hashes)} txs committed", interval=2.0)
    first, last = min(heights), max(heights)
    seconds = get_block_time(node, last) - get_block_time(node, first - 1)
    return len(hashes) / seconds, (last - first + 1) / seconds, len(hashes)


def run() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as directory:
        network = Localnet(Path(directory) / "localnet")
        try:
            network.start()
            idle = measure_idle(network.nodes[0])
            tps, blocks, count = measure_load(network)
        finally:
            network.stop()
    return [
        ("localnet blocks/s, no load (baseline)", f"{idle:.2f}/s", "", ""),
        (f"localnet under cosmjs load: {count:,} MsgSends from 4 senders to 4 nodes", f"{tps:,.0f} tx/s",
         f"{idle:.2f} blocks/s idle", ""),
        ("localnet blocks/s under that load", f"{blocks:.2f}/s", f"{idle:.2f}/s idle", f"{blocks / idle:.2f}"),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
