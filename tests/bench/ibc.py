"""IBC relayed by Hermes between a maxwell dev chain and ibc-go's simd: one transfer's round trip and
200 transfers under `hermes start`.

Baselines, measured on the same maxwell chain in the same run: a bank send from the CLI until its
block commits (for the round trip, which is four such txs and Hermes's queries), and the chain's
blocks/s (for packets/s: the ratio is packets relayed per maxwell block).
"""

import tempfile
import time
from pathlib import Path

from tests.helpers import ALICE, invoke
from tests.ibc.hermes import get_balance, measure_relaying, relay_dev_chain_and
from tests.ibc.simd import Simd
from tests.ibc.test_maxwell_to_simd import compute_voucher, ft_transfer, relay

MAXWELL_ID, SIMD_ID = "maxwell-bench-1", "simd-bench-1"
TRANSFERS_EACH_WAY = 100


def measure_send(maxwell) -> float:
    began = time.monotonic()
    sent = invoke("tx", "send", "alice", ALICE, "1ujoule", "--keyring-backend", "test", "--home", maxwell.home,
                  "--node", maxwell.rpc, "-o", "json")
    if sent.exit_code:
        raise RuntimeError(f"tx send failed: {sent.stderr.strip()}")
    return time.monotonic() - began


def measure_blocks_per_second(rpc_url: str) -> float:
    from node.client import Client
    rpc = Client(rpc_url)
    first, began = rpc.status().latest_block_height, time.monotonic()
    time.sleep(5)
    return (rpc.status().latest_block_height - first) / (time.monotonic() - began)


def measure_round_trip(hermes, maxwell, simd) -> float:
    voucher = compute_voucher("channel-0", "ujoule")
    began = time.monotonic()
    ft_transfer(hermes, MAXWELL_ID, SIMD_ID, 5000, "ujoule", "--timeout-seconds", "300")
    relay(hermes, MAXWELL_ID)
    ft_transfer(hermes, SIMD_ID, MAXWELL_ID, 5000, voucher, "--timeout-seconds", "300")
    relay(hermes, SIMD_ID)
    seconds = time.monotonic() - began
    if simd.get_balance(simd.relayer, voucher) != 0:
        raise RuntimeError("the round trip did not come home")
    return seconds


def measure_hermes_start(hermes, maxwell, simd, relayer) -> float:
    joule, stake = compute_voucher("channel-0", "ujoule"), compute_voucher("channel-0", simd.denom)
    on_simd, on_maxwell = simd.get_balance(simd.relayer, joule), get_balance(maxwell, relayer, stake)
    expected = 10 * TRANSFERS_EACH_WAY

    def is_relayed() -> bool:
        return (simd.get_balance(simd.relayer, joule) == on_simd + expected
                and get_balance(maxwell, relayer, stake) == on_maxwell + expected)

    seconds = measure_relaying(hermes, [
        ("--src-chain", source, "--dst-chain", destination, "--src-port", "transfer", "--src-channel", "channel-0",
         "--amount", "10", "--denom", denom, "--number-msgs", str(TRANSFERS_EACH_WAY), "--timeout-seconds", "600")
        for source, destination, denom in ((MAXWELL_ID, SIMD_ID, "ujoule"), (SIMD_ID, MAXWELL_ID, simd.denom))],
        is_relayed)
    if not is_relayed():
        raise RuntimeError(f"transfers lost: not all {2 * TRANSFERS_EACH_WAY} arrived")
    return 2 * TRANSFERS_EACH_WAY / seconds


def run() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as directory:
        with relay_dev_chain_and(Path(directory), MAXWELL_ID, Simd, SIMD_ID, "simd") as (hermes, maxwell, simd,
                                                                                         relayer):
            send = measure_send(maxwell)
            blocks = measure_blocks_per_second(maxwell.rpc)
            hermes.run("create", "channel", "--a-chain", MAXWELL_ID, "--b-chain", SIMD_ID, "--a-port", "transfer",
                       "--b-port", "transfer", "--new-client-connection", "--yes")
            round_trip = measure_round_trip(hermes, maxwell, simd)
            rate = measure_hermes_start(hermes, maxwell, simd, relayer)
    return [
        ("maxwell dev chain: one bank send, CLI to committed (baseline)", f"{send:.2f} s", "", ""),
        ("maxwell dev chain blocks/s (baseline)", f"{blocks:.2f}/s", "", ""),
        ("one transfer maxwell → simd v8.8.0 → maxwell, each leg by `hermes clear packets`", f"{round_trip:.1f} s",
         f"{send:.2f} s send", f"{round_trip / send:.1f}"),
        (f"`hermes start`: {2 * TRANSFERS_EACH_WAY} transfers maxwell ↔ simd, none lost", f"{rate:.1f} packets/s",
         f"{blocks:.2f} blocks/s", f"{rate / blocks:.1f}"),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
