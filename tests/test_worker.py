"""The worker daemon and the market / inference CLI against a real `maxwell dev` chain in a subprocess.

The worker runs in a thread of the test process; the CLI runs through typer's CliRunner.
"""

import json
import threading
import time
from pathlib import Path

import pytest

import node.main  # noqa: F401 - mounts the market, inference and worker commands on node.cli's app
from chain import heat
from chain.tx import TxParams, compute_required_fee
from node import keyring, worker
from tests.helpers import CIRCUITS, MNEMONIC, assert_one_line_error, invoke, start_dev_chain, stop_dev_chain

GENESIS_AMOUNT = 10**12
ASK = 100
WAIT_SECONDS = 90


class Thermometer:
    """The worker's heat sensor, set by the test."""

    def __init__(self, millicelsius: int):
        self.millicelsius = millicelsius

    def __call__(self) -> heat.HeatReading:
        return heat.HeatReading(self.millicelsius, 50_000)


def add_test_key(home: Path, name: str, mnemonic: str | None = None) -> str:
    args = ["keys", "add", name, "--keyring-backend", "test", "--home", home, "-o", "json"]
    result = invoke(*args, *(["--recover"] if mnemonic else []), input=mnemonic + "\n" if mnemonic else None)
    assert result.exit_code == 0, result.stderr
    address = json.loads(result.stdout)["address"]
    assert invoke("genesis", "add-account", address, f"{GENESIS_AMOUNT}ujoule", "--home", home).exit_code == 0
    return address


def add_digits_model_to_genesis(home: Path, authority: str) -> None:
    from google.protobuf import json_format

    from chain import inference, market
    from chain.proto.maxwell.market.v1 import market_pb2
    from zk.models import compute_genesis_models

    path = home / "config" / "genesis.json"
    genesis = json.loads(path.read_text())
    genesis["app_state"]["inference"] = inference.compute_default_genesis(
        authority, compute_genesis_models(CIRCUITS / "digits" / "manifest.json"))
    # 60 blocks (12 s at 200 ms) to prove a layer: with the default 20 (4 s) a slow moment of the machine misses
    # a deadline, and the slash puts carol under the minimum stake, so no one is left to assign tasks to
    params = market_pb2.Params()
    params.CopyFrom(market.DEFAULT_PARAMS)
    params.task_deadline_blocks = 60
    genesis["app_state"]["market"] = {"params": json_format.MessageToDict(params, preserving_proto_field_name=True)}
    path.write_text(json.dumps(genesis, indent=2))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    home = tmp_path_factory.mktemp("worker-chain")
    assert invoke("init", "--chain-id", "maxwell-worker-1", "--home", home).exit_code == 0
    addresses = {"alice": add_test_key(home, "alice", MNEMONIC), "carol": add_test_key(home, "carol"),
                 "dave": add_test_key(home, "dave")}
    add_digits_model_to_genesis(home, addresses["alice"])
    process, url = start_dev_chain(home)
    yield {"home": home, "url": url, "addresses": addresses}
    stop_dev_chain(process)


@pytest.fixture(scope="module")
def dave(chain):
    """dave offers process slots in carol's zone, registered with the CLI: what the market tests trade against."""
    registered = cli_tx(chain, "tx", "market", "register-provider", "dave",
                        "--ask", f"{ASK}ujoule", "--zone", "rack1", "--stake", "1000000ujoule")
    assert registered.exit_code == 0, registered.stderr
    return chain["addresses"]["dave"]


def cli(chain, *args):
    return invoke(*args, "--node", chain["url"], "--home", chain["home"])


def cli_tx(chain, *args):
    return cli(chain, *args, "--keyring-backend", "test")


def cli_json(chain, *args):
    result = cli(chain, *args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def wait_until(predicate, what: str, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def make_config(chain, key: str, sensor, heat_interval_blocks: int = 1) -> worker.WorkerConfig:
    private_key = keyring.get_private_key(chain["home"], "test", key)
    return worker.WorkerConfig(
        home=chain["home"] / key, node=chain["url"], private_key=private_key,
        offer=worker.Offer(models=("digits",), slots_per_block=4, ask_price=ASK, zone="rack1", stake=1_000_000),
        circuits_dir=CIRCUITS, heat_sensor=sensor, heat_interval_blocks=heat_interval_blocks,
    )


class RunningWorker:
    def __init__(self, config: worker.WorkerConfig):
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self.thread.start()

    def _run(self, config):
        try:
            worker.run(config, self.stopping)
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.error = error

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"
        assert self.error is None, repr(self.error)


def get_provider(chain, address: str) -> dict | None:
    return next((p for p in cli_json(chain, "market", "providers") if p["provider"]["address"] == address), None)


# --- provider, heat and the market CLI -------------------------------------------------------------

def test_worker_registers_and_its_heat_moves_its_effective_ask(chain, dave):
    carol = chain["addresses"]["carol"]
    sensor = Thermometer(80_000)
    running = RunningWorker(make_config(chain, "carol", sensor))
    try:
        # 80 °C is between warm (70) and critical (90): the premium doubles the ask
        hot = wait_until(lambda: (p := get_provider(chain, carol)) and p["effective_ask"] == str(2 * ASK) and p,
                         "carol's hot effective ask")
        assert hot["provider"]["ask_price"] == str(ASK) and hot["provider"]["models"] == ["digits"]

        # carol cools down while dave, in the same zone, runs hot: carol gets the zone discount
        sensor.millicelsius = 30_000
        for _ in range(3):
            reported = cli_tx(chain, "tx", "market", "report-heat", "dave", "--celsius", "85")
            assert reported.exit_code == 0, reported.stderr
        cool = wait_until(lambda: (p := get_provider(chain, carol)) and int(p["effective_ask"] or ASK) < ASK and p,
                          "carol's zone discount")
        assert cool["zone_temperature_millicelsius"] > cool["temperature_millicelsius"]
        assert int(get_provider(chain, dave)["effective_ask"]) > ASK
    finally:
        running.stop()

    table = cli(chain, "market", "providers")
    assert table.exit_code == 0 and carol in table.stdout and dave in table.stdout and "effective ask" in table.stdout
    state = json.loads((chain["home"] / "carol" / "worker" / "state.json").read_text())
    assert state["height"] > 0


def test_market_book_bid_cancel_and_clearing(chain, dave):
    bid = cli_tx(chain, "tx", "market", "bid", "alice", "process", "1ujoule", "--slots", "2", "-o", "json")
    assert bid.exit_code == 0, bid.stderr
    order = json.loads(bid.stdout)["order"]

    book = cli_json(chain, "market", "book", "--work", "process")
    assert [o["id"] for o in book] == [order] and book[0]["remaining"] == "2" and book[0]["max_price"] == "1"
    assert order in cli(chain, "market", "book").stdout

    cancelled = cli_tx(chain, "tx", "market", "cancel", "alice", order, "-o", "json")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["refund"] == "2"
    assert cli_json(chain, "market", "book", "--work", "process") == []

    again = cli_tx(chain, "tx", "market", "cancel", "alice", order)
    assert_one_line_error(again, f"order {order} does not exist")

    # a bid at the ask clears against the registered providers, at its block or later
    filled = cli_tx(chain, "tx", "market", "bid", "alice", "process", "1000ujoule", "-o", "json")
    assert filled.exit_code == 0, filled.stderr
    height = int(json.loads(filled.stdout)["height"])
    clearing = wait_until(lambda: [c for c in cli_json(chain, "market", "clearing")
                                   if c["work"] == "process" and int(c["height"]) >= height], "the bid's clearing")
    assert int(clearing[0]["price"]) >= 1 and clearing[0]["matched_slots"] == "1"
    history = cli_json(chain, "market", "clearing", str(height - 1), "--work", "process")
    assert all(int(c["height"]) < height for c in history)
    assert "matched slots" in cli(chain, "market", "clearing").stdout


def test_process_start_write_delete_top_up(chain, dave):
    started = cli_tx(chain, "tx", "process", "start", "alice", "1000ujoule", "100000ujoule", "-o", "json")
    assert started.exit_code == 0, started.stderr
    process_id = json.loads(started.stdout)["process"]

    assert cli_tx(chain, "tx", "process", "write", "alice", process_id, "greeting", "hello").exit_code == 0
    shown = cli_json(chain, "query", "process", process_id)
    assert shown["owner"] == chain["addresses"]["alice"]
    assert shown["memory"] == [{"key": b"greeting".hex(), "value": b"hello".hex()}]

    topped = cli_tx(chain, "tx", "process", "top-up", "alice", process_id, "5000ujoule", "-o", "json")
    assert topped.exit_code == 0, topped.stderr
    assert cli_tx(chain, "tx", "process", "delete", "alice", process_id, "greeting").exit_code == 0
    assert cli_json(chain, "query", "process", process_id)["memory"] == []

    missing = cli_tx(chain, "tx", "process", "delete", "alice", process_id, "greeting")
    assert_one_line_error(missing, "has no memory key")
    text = cli(chain, "query", "process", process_id)
    assert text.exit_code == 0 and "escrow" in text.stdout
    assert cli_tx(chain, "tx", "process", "stop", "alice", process_id).exit_code == 0


@pytest.mark.parametrize("args, fragments", [
    (["tx", "market", "bid", "alice", "process", "5other"], ["paid in ujoule"]),
    (["tx", "market", "bid", "alice", "process", "0ujoule"], ["must be positive"]),
    (["tx", "market", "bid", "alice", "nonsense", "5ujoule"], ["tx rejected", "market"]),
    (["tx", "market", "report-heat", "alice", "--celsius", "400"], ["invalid heat reading"]),
    (["tx", "market", "report-heat", "alice", "--celsius", "50"], ["tx rejected", "not a registered provider"]),
    (["query", "process", "999"], ["process 999 does not exist"]),
    (["market", "book", "--work", "inference/nope"], ["query", "failed"]),
])
def test_bad_market_input_is_one_line(chain, args, fragments):
    assert_one_line_error(cli_tx(chain, *args) if args[0] == "tx" else cli(chain, *args), *fragments)


def test_an_input_outside_the_circuits_range_is_one_line(chain, tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"input": [1e30] + [0.0] * 63}))
    result = cli_tx(chain, "infer", "request", "--from", "alice", "--model", "digits", "--input", huge,
                    "--reward", "3000ujoule")
    assert_one_line_error(result, "input 0 is 1e+30", "magnitude below 16384")


# --- inference end to end ------------------------------------------------------------------------

def get_balance(chain, address: str) -> int:
    return int(cli_json(chain, "query", "balance", address)["amount"])


def test_request_goes_to_a_verified_class_and_survives_a_worker_restart(chain, samples, tmp_path):
    values, label = samples["inputs"][0], samples["labels"][0]
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"input": values}))
    worker_address = chain["addresses"]["carol"]
    config = make_config(chain, "carol", Thermometer(40_000), heat_interval_blocks=10**6)
    running = RunningWorker(config)
    wait_until(lambda: get_provider(chain, worker_address), "carol registered")
    before = get_balance(chain, worker_address)
    requested = cli_tx(chain, "infer", "request", "--from", "alice", "--model", "digits", "--input", sample,
                       "--reward", "3000ujoule", "-o", "json")
    assert requested.exit_code == 0, requested.stderr
    request_id = json.loads(requested.stdout)["request_id"]

    # stop the worker as soon as layer 0 is proven, start it again: it finishes without resubmitting
    wait_until(lambda: cli_json(chain, "query", "inference", request_id)["layers"], "layer 0", timeout=240)
    running.stop()
    running = RunningWorker(config)
    try:
        done = wait_until(lambda: (r := cli_json(chain, "query", "inference", request_id))["status"] == "STATUS_COMPLETE"
                          and r, "a verified class", timeout=180)
    finally:
        running.stop()
    assert done["predicted_class"] == str(label)
    assert [layer["prover"] for layer in done["layers"]] == [worker_address] * 3
    paid = sum(int(layer["price"].removesuffix("ujoule")) for layer in done["layers"])
    assert done["paid"] == f"{paid}ujoule" and done["ended"].endswith(f"complete: class {label}")
    assert get_balance(chain, worker_address) > before - 3 * compute_required_fee(worker.SUBMIT_GAS, TxParams())

    state = json.loads((chain["home"] / "carol" / "worker" / "state.json").read_text())
    submitted = [key for key in state["submitted"] if key.startswith(f"{request_id}/")]
    assert len(submitted) == 3 and all("rejected" not in state["submitted"][k] for k in submitted)
    text = cli(chain, "query", "inference", request_id)
    assert f"predicted_class: {label}" in text.stdout
