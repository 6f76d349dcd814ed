"""A full disk under a running dev chain: block production halts with one line in the log, and once
space is freed a restart replays the last block and goes on, with every committed tx kept.

The node's home is on a small tmpfs of its own (mounting one needs root; elsewhere the test skips).
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from node import client
from tests.helpers import (
    init_funded_home,
    invoke,
    start_dev_chain,
    stop_dev_chain,
    wait_for,
)

TMPFS_SIZE = "64m"
FILLER_CHUNK = b"\0" * (1 << 20)
HALT_TIMEOUT_S = 30


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk has no space left."""
    filler = directory / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(FILLER_CHUNK)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            pass
    try:  # what the last chunk left over, a byte at a time would take long: smaller chunks instead
        with open(filler, "ab") as out:
            for size in (1 << 16, 1 << 12, 1 << 8, 1):
                try:
                    while True:
                        out.write(b"\0" * size)
                        out.flush()
                except OSError:
                    continue
    except OSError:
        pass
    return filler


def send(home: Path, url: str, recipient: str, amount: int) -> dict:
    result = invoke("tx", "send", "alice", recipient, f"{amount}ujoule", "--node", url, "--home", home,
                    "--keyring-backend", "test", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def get_balance(url: str, address: str) -> int:
    result = invoke("query", "balance", address, "--node", url, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["amount"])


def test_a_full_disk_halts_with_one_line_and_a_restart_loses_nothing(small_disk, tmp_path):
    home = small_disk / "home"
    home.mkdir()
    init_funded_home(home)
    recipient = json.loads(invoke("keys", "show", "bob", "--home", home, "-o", "json").stdout)["address"]
    log_path = tmp_path / "dev.log"
    process, url = start_dev_chain(home, block_time="100ms", log_path=log_path)
    try:
        send(home, url, recipient, 1000)
        filler = fill(small_disk)
        rpc = client.Client(url, timeout=2)

        def is_halted() -> bool:
            try:
                rpc.call("health", {})
            except client.ClientError as error:
                return "block production halted" in str(error)
            return False

        wait_for(is_halted, timeout=HALT_TIMEOUT_S)
        halted_at = rpc.status().latest_block_height
        time.sleep(1)
        assert rpc.status().latest_block_height == halted_at, "blocks went on without a disk"
    finally:
        stop_dev_chain(process)
    log = log_path.read_text()
    halt_lines = [line for line in log.splitlines() if "block production halted" in line]
    assert len(halt_lines) == 1 and "No space left on device" in halt_lines[0], log[-2000:]
    assert "Traceback" not in log, log[-4000:]

    filler.unlink()
    process, url = start_dev_chain(home, block_time="100ms", log_path=log_path)
    try:
        rpc = client.Client(url, timeout=2)
        wait_for(lambda: rpc.status().latest_block_height > halted_at + 2, timeout=HALT_TIMEOUT_S)
        assert get_balance(url, recipient) == 1000
        send(home, url, recipient, 500)
        assert get_balance(url, recipient) == 1500
    finally:
        stop_dev_chain(process)
    assert "Traceback" not in log_path.read_text()
