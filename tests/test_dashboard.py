"""The live dashboard (`/dashboard` on the REST port) in real headless Chromium, driven by Playwright: a dev chain
with its worker (as `make dev` runs them), a send and a proven inference made while the page is open, and the
page showing both without a reload; and clients that never read neither stop blocks nor the page."""

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from node import client
from tests.helpers import (
    ALICE, MAXWELL, REPO, compute_free_port, init_funded_home, invoke, read_log_tail, start_dev_chain, stop_dev_chain,
)

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / ".artifacts" / "dashboard.png"  # git-ignored; the test leaves it for people to look at
STARTUP_S = 90


def require_browser() -> None:
    assert CHROMIUM.exists(), "Debian's chromium is not installed: `make test` installs it"
    assert (DASHBOARD_DIR / "node_modules" / "playwright-core").is_dir(), "playwright-core missing: `make test` installs it"


def wait_for_height(rpc: client.Client, height: int, process: subprocess.Popen, log: Path, timeout: float = STARTUP_S) -> int:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, read_log_tail(log)
        try:
            latest = rpc.status().latest_block_height
            if latest >= height:
                return latest
        except client.ClientError:
            pass
        assert time.monotonic() < deadline, f"no block {height}: {read_log_tail(log)}"
        time.sleep(0.2)


def test_the_dashboard_shows_a_send_and_a_proven_inference_live(tmp_path):
    require_browser()
    init_funded_home(tmp_path, chain_id="maxwell-dashboard-1")
    assert invoke("keys", "add", "worker", "--keyring-backend", "test", "--home", tmp_path).exit_code == 0
    assert invoke("genesis", "add-account", "worker", "1000000000000ujoule", "--keyring-backend", "test",
                  "--home", tmp_path).exit_code == 0
    rpc_port, rest_port = compute_free_port(), compute_free_port()
    log = tmp_path / "dev.log"
    with open(log, "w") as out:
        chain = subprocess.Popen([str(MAXWELL), "worker", "dev", "--key", "worker", "--home", str(tmp_path),
                                  "--rpc", f"tcp://127.0.0.1:{rpc_port}", "--rest", f"127.0.0.1:{rest_port}",
                                  "--grpc", "off"], stdout=out, stderr=subprocess.STDOUT)
    browser = None
    try:
        rpc = client.Client(f"http://127.0.0.1:{rpc_port}", timeout=5)
        wait_for_height(rpc, 2, chain, log)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser = subprocess.Popen(["node", "check.mjs", f"http://127.0.0.1:{rest_port}", str(SCREENSHOT)],
                                   cwd=DASHBOARD_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        assert browser.stdout.readline().strip() == "READY", browser.stderr.read()
        common = ["--node", f"http://127.0.0.1:{rpc_port}", "--keyring-backend", "test", "--home", str(tmp_path),
                  "-o", "json", "-y"]
        sent = subprocess.run([str(MAXWELL), "tx", "send", "alice", ALICE, "1234ujoule", *common],
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        tx_hash = json.loads(sent.stdout)["hash"]
        requested = subprocess.run([str(MAXWELL), "infer", "request", "--model", "digits", "--input",
                                    str(REPO / "circuits" / "digits" / "sample.json"), "--reward", "1000ujoule",
                                    "--from", "alice", *common], capture_output=True, text=True, timeout=60)
        assert requested.returncode == 0, requested.stderr
        request_id = json.loads(requested.stdout)["request_id"]
        out, err = browser.communicate(json.dumps({"tx_hash": tx_hash, "request_id": request_id}) + "\n", timeout=240)
        assert browser.returncode == 0, err + read_log_tail(log)
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["same_document"], "the page reloaded instead of updating"
        assert seen["tx"].startswith(tx_hash[:12]) and "MsgSend" in seen["tx"] and "ok" in seen["tx"]
        assert "complete" in seen["request"]
        predicted = invoke("query", "inference", request_id, "--node", f"http://127.0.0.1:{rpc_port}", "-o", "json")
        assert seen["predicted_class"] == json.loads(predicted.stdout)["predicted_class"]
        assert int(seen["clearing_price"]) > 0 and seen["heat_cells"] == 1 and seen["blocks"] >= 5
        assert [e for e in seen["errors"] if "Failed to load resource" not in e] == []
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        if browser is not None and browser.poll() is None:
            browser.kill()
        stop_dev_chain(chain)


# --- clients that never read ---------------------------------------------------------------------

def open_silent_websocket(port: int) -> socket.socket:
    """A websocket subscribed to every NewBlock whose reader never reads (and whose receive buffer is tiny)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                          "params": {"query": "tm.event='NewBlock'"}}).encode()
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def test_clients_that_never_read_stop_neither_blocks_nor_the_dashboard(tmp_path):
    init_funded_home(tmp_path, chain_id="maxwell-dashboard-2")
    rest_port = compute_free_port()
    process, url = start_dev_chain(tmp_path, "100ms", "off", f"127.0.0.1:{rest_port}")
    silent = []
    try:
        rpc_port = int(url.rsplit(":", 1)[1])
        silent += [open_silent_websocket(rpc_port) for _ in range(20)]
        for _ in range(20):  # the page's files asked for and never read
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", rest_port))
            sock.sendall(b"GET /dashboard/dashboard.js HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
            silent.append(sock)
        rpc = client.Client(url, timeout=5)
        start, began = rpc.status().latest_block_height, time.monotonic()
        wait_for_height(rpc, start + 50, process, tmp_path / "dev.log", timeout=60)
        assert time.monotonic() - began < 20, "blocks slowed down behind the clients that never read"
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/dashboard", timeout=5) as page:
            assert b"dashboard.js" in page.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/dashboard/config.json", timeout=5) as config:
            assert json.loads(config.read())["websocket"] == f"ws://127.0.0.1:{rpc_port}/websocket"
        for name in ("nope.js", "..%2F..%2Fsetup.py", "../pyproject.toml"):  # only the package's own files
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/dashboard/{name}", timeout=5)
            assert refused.value.code == 404 and json.loads(refused.value.read())["code"] == 5
    finally:
        for sock in silent:
            sock.close()
        stop_dev_chain(process)
