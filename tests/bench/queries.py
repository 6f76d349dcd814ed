"""Balance queries/s through each way in: gRPC, the REST gateway and ABCI (the CometBFT RPC's abci_query).

One in-process dev chain of the real App making blocks, with its gRPC server and REST gateway on the same
backend; CLIENTS threads (in the same process as the servers, so they share its interpreter), each with one
kept-alive connection, ask for alice's balance for SECONDS.
Baseline: App.query called in-process (what every way in ends in), in the same run.
"""

import base64
import http.client
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from chain.app import App
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from node import grpc_backend, grpc_server, rest
from node.devchain import DevChain
from tests.helpers import INITIAL_BALANCE, compute_free_port, make_account, make_app_state, make_home

CLIENTS = 8
SECONDS = 3.0
BALANCE_PATH = "/cosmos.bank.v1beta1.Query/Balance"


def measure(make_client) -> float:
    """Calls/s of CLIENTS threads, each calling `make_client()()` until SECONDS have passed."""
    stop = threading.Event()

    def loop(_) -> int:
        call, calls = make_client(), 0
        while not stop.is_set():
            call()
            calls += 1
        return calls

    with ThreadPoolExecutor(CLIENTS) as pool:
        started = time.perf_counter()
        futures = [pool.submit(loop, index) for index in range(CLIENTS)]
        time.sleep(SECONDS)
        stop.set()
        total = sum(future.result() for future in futures)
    return total / (time.perf_counter() - started)


def make_http_client(port: int, method: str, path: str, body: bytes | None, expected: bytes):
    """A call over one kept-alive connection, checked to answer `expected` among its bytes."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call() -> None:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200 and expected in response.read()
    return call


def run() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as directory:
        alice = make_account("alice", 0)
        make_home(directory, app_state=make_app_state([alice]))
        app = App(str(Path(directory) / "data"))
        chain = DevChain(directory, app=app, block_time_ms=200)
        chain.start(f"tcp://127.0.0.1:{compute_free_port()}")
        backend = grpc_backend.DevBackend(chain)
        grpc_service, grpc_port = grpc_server.serve(backend, "127.0.0.1:0")
        rest_service = rest.serve(backend, "127.0.0.1:0")
        request = bank_query_pb2.QueryBalanceRequest(address=alice.bech32, denom="ujoule").SerializeToString()
        try:
            query = abci_pb2.RequestQuery(path=BALANCE_PATH, data=request)
            answer = chain.get_query(query).value
            assert bank_query_pb2.QueryBalanceResponse.FromString(answer).balance.amount == str(INITIAL_BALANCE)
            baseline = measure(lambda: lambda: chain.get_query(query))

            def make_grpc_client():
                method = grpc.insecure_channel(f"127.0.0.1:{grpc_port}").unary_unary(BALANCE_PATH)
                return lambda: method(request, timeout=30)

            rates = {
                "gRPC": measure(make_grpc_client),
                "REST": measure(lambda: make_http_client(
                    rest_service.port, "GET", f"/cosmos/bank/v1beta1/balances/{alice.bech32}/by_denom?denom=ujoule",
                    None, f'"amount":"{INITIAL_BALANCE}"'.encode())),
                "ABCI (RPC abci_query)": measure(lambda: make_http_client(
                    chain.rpc_server.port, "POST", "/", json.dumps({
                        "jsonrpc": "2.0", "id": 1, "method": "abci_query",
                        "params": {"path": BALANCE_PATH, "data": request.hex()}}).encode(), base64.b64encode(answer))),
            }
        finally:
            rest_service.stop()
            grpc_service.stop(0).wait()
            chain.stop()
            app.close()
    rows = [("Balance via App.query in-process (baseline)", f"{baseline:,.0f}/s", "", "")]
    rows += [(f"Balance over {way}, {CLIENTS} clients", f"{rate:,.0f}/s", f"{baseline:,.0f}/s in-process",
              f"{rate / baseline:.3f}") for way, rate in rates.items()]
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
