"""The `maxwell` CLI: offline commands through typer's CliRunner, chain commands against a real
`maxwell dev` node in a subprocess."""

import base64
import json
import signal
import subprocess
from pathlib import Path

import pytest

from chain import bank, crypto, validators
from chain.proto.tendermint.abci import types_pb2 as abci
from node import client, keyring, privval
from node.cli import compute_duration_ms
from tests.helpers import (
    ALICE,
    GENESIS_AMOUNT,
    MAXWELL,
    MNEMONIC,
    PASSPHRASE,
    STARTUP_TIMEOUT_SECONDS,
    assert_one_line_error,
    compute_free_port,
    finalize,
    init_funded_home,
    invoke,
    send,
    start_dev_chain,
    stop_dev_chain,
)

SLOW_BLOCK_TIME = "3s"
DEFAULT_FEE = 5000
DIGITS_SAMPLE = Path(__file__).resolve().parents[1] / "circuits" / "digits" / "sample.json"


def run_maxwell(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MAXWELL), *map(str, args)], input=input, capture_output=True, text=True, timeout=120)


# --- keys ------------------------------------------------------------------------------------------

def test_keys_add_shows_the_mnemonic_once_and_it_recovers_the_same_key(tmp_path):
    created = invoke("keys", "add", "carol", "--keyring-backend", "test", "--home", tmp_path / "a", "-o", "json")
    assert created.exit_code == 0, created.stderr
    record = json.loads(created.stdout)
    assert record["address"].startswith("mxw1") and len(record["mnemonic"].split()) == 24

    shown = invoke("keys", "show", "carol", "--keyring-backend", "test", "--home", tmp_path / "a")
    assert record["address"] in shown.stdout and record["mnemonic"] not in shown.stdout

    recovered = invoke("keys", "add", "carol2", "--recover", "--keyring-backend", "test", "--home", tmp_path / "b",
                       "-o", "json", input=record["mnemonic"] + "\n")
    assert recovered.exit_code == 0, recovered.stderr
    assert json.loads(recovered.stdout)["address"] == record["address"]
    assert "mnemonic" not in json.loads(recovered.stdout)


def test_recovered_address_matches_cosmos_derivation(tmp_path):
    result = invoke("keys", "add", "alice", "--recover", "--keyring-backend", "test", "--home", tmp_path, "-o", "json",
                    input=MNEMONIC + "\n")
    assert json.loads(result.stdout)["address"] == ALICE
    assert invoke("keys", "show", "alice", "-a", "--keyring-backend", "test", "--home", tmp_path).stdout.strip() == ALICE


def test_recover_refuses_a_bad_mnemonic(tmp_path):
    words = MNEMONIC.split()
    swapped = " ".join(words[1:2] + words[:1] + words[2:])
    for mnemonic, message in ((swapped, "invalid mnemonic"), ("", "no mnemonic on stdin")):
        result = invoke("keys", "add", "x", "--recover", "--keyring-backend", "test", "--home", tmp_path,
                        input=mnemonic + "\n")
        assert_one_line_error(result, message)
    assert keyring.get_keys(tmp_path, "test") == []


def test_file_keyring_prompts_for_a_confirmed_passphrase_and_encrypts(tmp_path):
    result = invoke("keys", "add", "dave", "--home", tmp_path, "-o", "json",
                    input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert result.exit_code == 0, result.stderr
    mnemonic = json.loads(result.stdout)["mnemonic"]
    assert mnemonic not in (tmp_path / "keyring-file" / "dave.json").read_text()
    assert keyring.get_mnemonic(tmp_path, "file", "dave", PASSPHRASE) == mnemonic


def test_file_keyring_refuses_a_short_passphrase(tmp_path):
    result = invoke("keys", "add", "dave", "--home", tmp_path, input="short\nshort\n")
    assert_one_line_error(result, "at least 8 characters")
    assert keyring.get_keys(tmp_path, "file") == []


def test_keys_list_and_delete(tmp_path):
    for name in ("erin", "frank"):
        invoke("keys", "add", name, "--keyring-backend", "test", "--home", tmp_path)
    listed = json.loads(invoke("keys", "list", "--keyring-backend", "test", "--home", tmp_path, "-o", "json").stdout)
    assert [k["name"] for k in listed] == ["erin", "frank"]
    assert "frank" in invoke("keys", "list", "--keyring-backend", "test", "--home", tmp_path).stdout

    declined = invoke("keys", "delete", "erin", "--keyring-backend", "test", "--home", tmp_path, input="n\n")
    assert_one_line_error(declined, "aborted")
    assert keyring.is_key(tmp_path, "test", "erin")

    deleted = invoke("keys", "delete", "erin", "--yes", "--keyring-backend", "test", "--home", tmp_path)
    assert deleted.exit_code == 0
    assert [k.name for k in keyring.get_keys(tmp_path, "test")] == ["frank"]


# --- init and genesis ------------------------------------------------------------------------------

def test_init_writes_a_cometbft_genesis_and_refuses_to_overwrite_it(tmp_path):
    result = invoke("init", "--chain-id", "maxwell-9", "--moniker", "val0", "--home", tmp_path, "-o", "json")
    assert result.exit_code == 0, result.stderr
    genesis = json.loads((tmp_path / "config" / "genesis.json").read_text())
    key = privval.load(tmp_path / "config" / "priv_validator_key.json")

    assert genesis["chain_id"] == "maxwell-9" and genesis["initial_height"] == "1"
    assert genesis["genesis_time"].endswith("Z")
    assert genesis["consensus_params"]["block"] == {"max_bytes": "22020096", "max_gas": "-1"}
    assert genesis["consensus_params"]["validator"] == {"pub_key_types": ["ed25519"]}
    assert genesis["consensus_params"]["abci"] == {"vote_extensions_enable_height": "1"}  # heat rides on votes
    assert genesis["validators"] == [{
        "address": key.address.hex().upper(),
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(key.pub_key).decode()},
        "power": "10", "name": "val0",
    }]
    assert set(genesis["app_state"]) == {"auth", "bank", "staking", "slashing", "heat", "market", "process", "inference",
                                        "ibc", "transfer", "icacontroller", "icahost"}
    assert genesis["app_state"]["bank"]["supply"] == []
    assert [m["name"] for m in genesis["app_state"]["inference"]["models"]] == ["digits"]
    assert json.loads(result.stdout)["validator_address"] == key.address.hex().upper()

    before = (tmp_path / "config" / "genesis.json").read_bytes()
    again = invoke("init", "--chain-id", "other", "--home", tmp_path)
    assert_one_line_error(again, "already exists")
    assert (tmp_path / "config" / "genesis.json").read_bytes() == before


def test_genesis_add_account_by_key_name_and_address(tmp_path):
    invoke("init", "--chain-id", "maxwell-9", "--home", tmp_path)
    invoke("keys", "add", "alice", "--recover", "--keyring-backend", "test", "--home", tmp_path, input=MNEMONIC + "\n")
    other = crypto.encode_address(bytes(20))

    assert invoke("genesis", "add-account", "alice", "1000ujoule", "--keyring-backend", "test", "--home", tmp_path).exit_code == 0
    assert invoke("genesis", "add-account", other, "5ujoule,7other", "--home", tmp_path).exit_code == 0
    balances = json.loads((tmp_path / "config" / "genesis.json").read_text())["app_state"]["bank"]["balances"]
    assert balances == [
        {"address": ALICE, "coins": [{"denom": "ujoule", "amount": "1000"}]},
        {"address": other, "coins": [{"denom": "other", "amount": "7"}, {"denom": "ujoule", "amount": "5"}]},
    ]

    duplicate = invoke("genesis", "add-account", ALICE, "1ujoule", "--home", tmp_path)
    assert_one_line_error(duplicate, "already has a genesis balance")


@pytest.mark.parametrize("args, fragments", [
    (["genesis", "add-account", "mxw1notanaddress", "1ujoule"], ["neither a valid address", "nor a key"]),
    (["genesis", "add-account", "nobody", "1ujoule"], ["'nobody'", "nor a key in the file keyring"]),
    (["genesis", "add-account", ALICE, "12"], ["invalid coin '12'"]),
    (["genesis", "add-account", ALICE, "5.0ujoule"], ["invalid coin"]),
    (["genesis", "add-account", ALICE, "0ujoule"], ["must be positive"]),
    (["init", "--chain-id", "has space"], ["invalid chain id"]),
    (["keys", "show", "nobody"], ["key 'nobody' not found"]),
    (["keys", "add", "../x", "--keyring-backend", "test"], ["invalid key name"]),
    (["keys", "delete", "nobody", "--yes"], ["key 'nobody' not found"]),
    (["query", "balance", "mxw1bad"], ["invalid bech32 address"]),
    (["query", "balance", crypto.encode_address(bytes(20), "cosmos")], ["has prefix 'cosmos', expected 'mxw'"]),
    (["query", "tx", "xyz"], ["invalid tx hash"]),
    (["status", "--node", "ftp://127.0.0.1:1"], ["invalid node URL"]),
    (["dev", "--block-time", "fast"], ["invalid duration"]),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, args, fragments):
    invoke("init", "--chain-id", "maxwell-9", "--home", tmp_path)
    assert_one_line_error(invoke(*args, "--home", tmp_path), *fragments)


def test_genesis_commands_need_a_genesis(tmp_path):
    assert_one_line_error(invoke("genesis", "add-account", ALICE, "1ujoule", "--home", tmp_path), "run `maxwell init` first")


def test_unreachable_node_is_one_line(tmp_path):
    port = compute_free_port()
    for args in (["status"], ["query", "balance", ALICE], ["query", "block", "3"]):
        result = invoke(*args, "--node", f"tcp://127.0.0.1:{port}", "--home", tmp_path)
        assert_one_line_error(result, f"cannot reach node at tcp://127.0.0.1:{port}", "refused")


def test_tx_send_with_a_wrong_passphrase_fails_before_signing(tmp_path):
    invoke("keys", "add", "bob", "--home", tmp_path, input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    (tmp_path / "wrong").write_text("not the passphrase\n")
    result = invoke("tx", "send", "bob", ALICE, "1ujoule", "--keyring-passphrase-file", tmp_path / "wrong",
                    "--node", f"http://127.0.0.1:{compute_free_port()}", "--home", tmp_path)
    assert_one_line_error(result, "wrong passphrase for key 'bob'")
    prompted = invoke("tx", "send", "bob", ALICE, "1ujoule", "--home", tmp_path, input="not the passphrase\n")
    assert prompted.exit_code == 1 and "wrong passphrase for key 'bob'" in prompted.stderr


def test_tx_send_checks_amounts_and_keys_before_anything_else(tmp_path):
    invoke("keys", "add", "alice", "--recover", "--keyring-backend", "test", "--home", tmp_path, input=MNEMONIC + "\n")
    common = ["--keyring-backend", "test", "--home", tmp_path]
    assert_one_line_error(invoke("tx", "send", "alice", ALICE, "1.5ujoule", *common), "invalid coin '1.5ujoule'")
    assert_one_line_error(invoke("tx", "send", "alice", ALICE, "1ujoule", "--fees", "3atom", *common), "fees are paid in ujoule")
    assert_one_line_error(invoke("tx", "send", "nobody", ALICE, "1ujoule", *common), "no key 'nobody'")
    assert_one_line_error(invoke("tx", "send", "alice", "mxw1xx", "1ujoule", *common), "neither a valid address")


def test_block_time_durations():
    assert compute_duration_ms("1s") == 1000
    assert compute_duration_ms("200ms") == 200
    assert compute_duration_ms("1.5s") == 1500


# --- proof checking against a real app -------------------------------------------------------------

def query_balance_proof(app, address: bytes, height: int):
    key = bank.state_key(bank.BALANCE, address, "ujoule")
    response = app.query(abci.RequestQuery(path="store/bank/key", data=key, height=height, prove=True))
    ops = tuple(client.ProofOp(op.type, op.key, op.data) for op in response.proof_ops.ops)
    return key, response.value, ops


def test_balance_proofs_verify_against_the_app_hash(app, accounts):
    app_hash = app.store.app_hash
    alice = accounts[0]
    key, value, ops = query_balance_proof(app, alice.address, 1)
    client.verify_store_proof("bank", key, value, ops, app_hash)
    assert int(value) > 0

    with pytest.raises(client.ProofError):
        client.verify_store_proof("bank", key, str(int(value) + 1).encode(), ops, app_hash)
    with pytest.raises(client.ProofError):
        client.verify_store_proof("bank", key, value, ops, bytes(32))
    with pytest.raises(client.ProofError):
        client.verify_store_proof("bank", key, b"", ops, app_hash)


def test_absent_balances_have_non_existence_proofs(app):
    stranger = bytes(range(20))
    key, value, ops = query_balance_proof(app, stranger, 1)
    assert value == b""
    client.verify_store_proof("bank", key, b"", ops, app.store.app_hash)
    with pytest.raises(client.ProofError):
        client.verify_store_proof("bank", key, b"1", ops, app.store.app_hash)


def test_a_proof_for_one_height_does_not_verify_against_the_next(app, accounts):
    key, value, ops = query_balance_proof(app, accounts[0].address, 1)
    first = app.store.app_hash
    finalize(app, 2, [send(accounts[0], accounts[1].address, 10)])
    app.commit()
    assert app.store.app_hash != first
    with pytest.raises(client.ProofError):
        client.verify_store_proof("bank", key, value, ops, app.store.app_hash)


# --- against a running dev chain -------------------------------------------------------------------

@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    home = tmp_path_factory.mktemp("devnet")
    init_funded_home(home)
    process, url = start_dev_chain(home)
    yield home, url
    stop_dev_chain(process)


def get_balance(home: Path, url: str, who: str) -> int:
    result = invoke("query", "balance", who, "--node", url, "--keyring-backend", "test", "--home", home, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["amount"])


def test_status_and_genesis_balance(devnet):
    home, url = devnet
    status = json.loads(invoke("status", "--node", url, "--home", home, "-o", "json").stdout)
    assert status["chain_id"] == "maxwell-cli-1" and status["version"].startswith("0.38.")
    assert int(status["latest_block_height"]) >= 1
    text = invoke("query", "balance", "alice", "--node", url, "--keyring-backend", "test", "--home", home).stdout
    assert f"{ALICE}: " in text and "ujoule at height" in text


def test_send_with_the_file_keyring_and_see_it_everywhere(devnet):
    home, url = devnet
    bob = keyring.get_key(home, "file", "bob").address
    alice_before = get_balance(home, url, "alice")

    # alice funds bob (test keyring), then bob sends back with his encrypted key, as a subprocess.
    funded = invoke("tx", "send", "alice", bob, "100000ujoule", "--node", url, "--keyring-backend", "test",
                    "--home", home, "-o", "json")
    assert funded.exit_code == 0, funded.stderr
    assert get_balance(home, url, bob) == 100000
    assert get_balance(home, url, "alice") == alice_before - 100000 - 5000

    sent = run_maxwell("tx", "send", "bob", ALICE, "1234ujoule", "--fees", "6000ujoule",
                       "--keyring-passphrase-file", home / "passphrase", "--node", url.replace("http", "tcp"),
                       "--home", home)
    assert sent.returncode == 0, sent.stderr
    tx_hash = sent.stdout.split("txhash: ")[1].split()[0]
    assert "included in block" in sent.stdout and ": code 0" in sent.stdout
    assert get_balance(home, url, bob) == 100000 - 1234 - 6000

    shown = json.loads(invoke("query", "tx", tx_hash.lower(), "--node", url, "--home", home, "-o", "json").stdout)
    assert shown["code"] == 0 and shown["hash"] == tx_hash
    assert shown["messages"] == [{"@type": "/cosmos.bank.v1beta1.MsgSend", "from_address": bob, "to_address": ALICE,
                                  "amount": [{"denom": "ujoule", "amount": "1234"}]}]
    transfers = [dict((a["key"], a["value"]) for a in e["attributes"]) for e in shown["events"] if e["type"] == "transfer"]
    assert {"sender": bob, "recipient": ALICE, "amount": "1234ujoule"} in transfers

    block = json.loads(invoke("query", "block", shown["height"], "--node", url, "--home", home, "-o", "json").stdout)
    assert tx_hash in block["txs"]
    account = json.loads(invoke("query", "account", "bob", "--node", url, "--home", home, "-o", "json").stdout)
    assert account["sequence"] == "1" and account["pub_key"]["@type"] == "/cosmos.crypto.secp256k1.PubKey"


def test_balance_proof_is_checked_against_the_next_block(devnet):
    home, url = devnet
    result = run_maxwell("query", "balance", "alice", "--prove", "--node", url, "--keyring-backend", "test",
                         "--home", home, "-o", "json")
    assert result.returncode == 0, result.stderr
    proven = json.loads(result.stdout)
    assert proven["proof"]["verified"] is True
    assert int(proven["proof"]["block_height"]) == int(proven["height"]) + 1
    block = json.loads(invoke("query", "block", proven["proof"]["block_height"], "--node", url, "--home", home,
                              "-o", "json").stdout)
    assert block["app_hash"] == proven["proof"]["app_hash"]

    absent = invoke("query", "balance", crypto.encode_address(bytes(20)), "--prove", "--node", url, "--home", home)
    assert absent.exit_code == 0, absent.stderr
    assert ": 0ujoule at height" in absent.stdout and "proof verified against app hash" in absent.stdout


def test_rejected_transactions_are_one_line(devnet):
    home, url = devnet
    common = ["--node", url, "--keyring-backend", "test", "--home", home]
    low_fee = invoke("tx", "send", "alice", ALICE, "1ujoule", "--fees", "1ujoule", *common)
    assert_one_line_error(low_fee, "tx rejected: code 13 (sdk)", "insufficient fee")

    invoke("keys", "add", "unfunded", "--keyring-backend", "test", "--home", home)
    unfunded = invoke("tx", "send", "unfunded", ALICE, "1ujoule", *common)
    assert_one_line_error(unfunded, "not found on chain maxwell-cli-1")
    missing = invoke("query", "tx", "AB" * 32, "--node", url, "--home", home)
    assert_one_line_error(missing, f"tx {'AB' * 32} not found")
    nobody = crypto.encode_address(bytes(20))
    no_account = invoke("query", "account", nobody, "--node", url, "--home", home)
    assert_one_line_error(no_account, f"account {nobody} not found")
    future = invoke("query", "block", "100000000", "--node", url, "--home", home)
    assert_one_line_error(future, "must be less than or equal to the current blockchain height")


def test_no_wait_prints_the_hash_and_the_tx_lands(devnet):
    home, url = devnet
    result = invoke("tx", "send", "alice", ALICE, "1ujoule", "--no-wait", "--node", url, "--keyring-backend", "test",
                    "--home", home, "-o", "json")
    assert result.exit_code == 0, result.stderr
    tx_hash = json.loads(result.stdout)["hash"]
    assert client.Client(url).wait_for_tx(bytes.fromhex(tx_hash), 30).code == 0


def test_a_mistyped_denom_is_reported_as_unknown(devnet):
    home, url = devnet
    common = ["--node", url, "--keyring-backend", "test", "--home", home]
    typo = invoke("tx", "send", "alice", ALICE, "1000ujoul", *common)
    assert_one_line_error(typo, "unknown denom ujoul: the chain's denoms are ujoule")
    assert "insufficient" not in typo.stderr
    second = invoke("tx", "send", "alice", ALICE, "1000ujoule,5ujoul", *common)
    assert_one_line_error(second, "unknown denom ujoul")


def test_insufficient_funds_names_the_amount_asked_and_the_fee(devnet):
    home, url = devnet
    common = ["--node", url, "--keyring-backend", "test", "--home", home]
    invoke("keys", "add", "poor", "--keyring-backend", "test", "--home", home)
    poor = keyring.get_key(home, "test", "poor").address
    assert invoke("tx", "send", "alice", poor, "5ujoule", *common).exit_code == 0

    send = invoke("tx", "send", "poor", ALICE, "1000ujoule", *common)
    assert_one_line_error(send, f"insufficient funds: balance 5ujoule is smaller than 1000ujoule asked plus a fee of {DEFAULT_FEE}ujoule")
    alice = get_balance(home, url, "alice")
    too_much = invoke("tx", "send", "alice", ALICE, f"{10 * GENESIS_AMOUNT}ujoule", "--fees", "6000ujoule", *common)
    assert_one_line_error(too_much, f"insufficient funds: balance {alice}ujoule is smaller than "
                                    f"{10 * GENESIS_AMOUNT}ujoule asked plus a fee of 6000ujoule")
    request = invoke("infer", "request", "--from", "poor", "--input", DIGITS_SAMPLE, "--reward", "3000ujoule", *common)
    assert_one_line_error(request, "insufficient funds: balance 5ujoule is smaller than 3000ujoule asked plus a fee")
    cancel = invoke("tx", "market", "cancel", "poor", "1", *common)
    assert_one_line_error(cancel, f"insufficient funds: balance 5ujoule is smaller than the fee of {DEFAULT_FEE}ujoule")
    assert get_balance(home, url, poor) == 5


def test_json_output_is_one_document_and_the_hash_comes_first_on_stderr(devnet):
    home, url = devnet
    sent = run_maxwell("tx", "send", "alice", ALICE, "1ujoule", "--node", url, "--keyring-backend", "test",
                       "--home", home, "-o", "json")
    assert sent.returncode == 0, sent.stderr
    record = json.loads(sent.stdout)
    assert record["code"] == 0 and sent.stderr == f"txhash: {record['hash']} (accepted, waiting for a block)\n"


# --- a slow chain: what a tx command shows while it waits for its block ----------------------------

@pytest.fixture(scope="module")
def slow_devnet(tmp_path_factory):
    home = tmp_path_factory.mktemp("slow-devnet")
    init_funded_home(home)
    process, url = start_dev_chain(home, SLOW_BLOCK_TIME)
    provider = invoke("tx", "market", "register-provider", "alice", "--models", "digits", "--node", url,
                      "--keyring-backend", "test", "--home", home)
    assert provider.exit_code == 0, provider.stderr  # an inference request needs a provider's slots
    yield home, url
    stop_dev_chain(process)


def interrupt_once_accepted(url: str, *args: str, output: str = "text") -> tuple[subprocess.CompletedProcess, str]:
    """Runs `maxwell ARGS` just after a block and sends it SIGINT as soon as it printed the accepted tx's hash."""
    rpc = client.Client(url)
    rpc.wait_for_height(rpc.status().latest_block_height + 1, STARTUP_TIMEOUT_SECONDS)
    command = [str(MAXWELL), *map(str, args), "--node", url, "-o", output]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = (running.stdout if output == "text" else running.stderr).readline()
    running.send_signal(signal.SIGINT)
    stdout, stderr = running.communicate(timeout=60)
    assert line.startswith("txhash: "), (line, stdout, stderr)
    if output == "text":
        return subprocess.CompletedProcess(command, running.returncode, line + stdout, stderr), line.split()[1]
    return subprocess.CompletedProcess(command, running.returncode, stdout, stderr), line.split()[1]


def test_an_interrupted_send_names_its_hash_and_the_tx_lands(slow_devnet):
    home, url = slow_devnet
    bob = keyring.get_key(home, "file", "bob").address
    interrupted, tx_hash = interrupt_once_accepted(url, "tx", "send", "alice", bob, "1234ujoule",
                                                   "--keyring-backend", "test", "--home", home)
    assert_one_line_error(interrupted, f"interrupted: tx {tx_hash} was accepted by the node and may still land",
                          f"`maxwell query tx {tx_hash}`")
    assert "included in block" not in interrupted.stdout

    assert client.Client(url).wait_for_tx(bytes.fromhex(tx_hash), 30).code == 0
    shown = json.loads(invoke("query", "tx", tx_hash, "--node", url, "--home", home, "-o", "json").stdout)
    assert shown["code"] == 0 and shown["messages"][0]["to_address"] == bob
    assert get_balance(home, url, bob) == 1234


def test_an_interrupted_inference_request_says_how_to_find_the_request(slow_devnet):
    home, url = slow_devnet
    interrupted, tx_hash = interrupt_once_accepted(url, "infer", "request", "--input", DIGITS_SAMPLE,
                                                   "--reward", "3000ujoule", "--home", home, output="json")
    assert_one_line_error(interrupted, f"tx {tx_hash} was accepted by the node and may still land",
                          f"`maxwell query tx {tx_hash}`", "inference_requested", "`maxwell query inference <id>`")
    assert interrupted.stdout == ""

    assert client.Client(url).wait_for_tx(bytes.fromhex(tx_hash), 30).code == 0
    shown = json.loads(invoke("query", "tx", tx_hash, "--node", url, "--home", home, "-o", "json").stdout)
    request_id, = [a["value"] for e in shown["events"] if e["type"] == "inference_requested"
                   for a in e["attributes"] if a["key"] == "request_id"]
    request = json.loads(invoke("query", "inference", request_id, "--node", url, "--home", home, "-o", "json").stdout)
    assert request["requester"] == ALICE and request["reward"] == "3000"


def test_genesis_validate_checks_the_file_as_a_node_starts_from_it(tmp_path):
    assert invoke("init", "--chain-id", "maxwell-9", "--home", tmp_path).exit_code == 0
    valid = invoke("genesis", "validate", "--home", tmp_path, "-o", "json")
    assert valid.exit_code == 0, valid.stderr
    assert json.loads(valid.stdout)["chain_id"] == "maxwell-9" and json.loads(valid.stdout)["validators"] == 1
    path = tmp_path / "config" / "genesis.json"
    genesis = json.loads(path.read_text())
    genesis["app_state"]["market"] = {"params": {"protocol_fee_bps": "99999"}}
    path.write_text(json.dumps(genesis))
    assert_one_line_error(invoke("genesis", "validate", "--home", tmp_path), "protocol_fee_bps must be at most 10000")
    genesis["genesis_time"] = "yesterday"
    path.write_text(json.dumps(genesis))
    assert_one_line_error(invoke("genesis", "validate", "--home", tmp_path), "is invalid")


def test_gentx_and_collect_gentxs_make_the_genesis_validator_set(tmp_path):
    init_funded_home(tmp_path, chain_id="maxwell-gentx-1")
    assert_one_line_error(invoke("genesis", "gentx", "alice", "1000000ujoule", "--chain-id", "other-1",
                                 "--keyring-backend", "test", "--home", tmp_path), "not the genesis file's chain id")
    assert_one_line_error(invoke("genesis", "gentx", "bob", "1000000ujoule", "--keyring-passphrase-file",
                                 tmp_path / "passphrase", "--home", tmp_path), "has no account in genesis")
    made = invoke("genesis", "gentx", "alice", "100000000ujoule", "--moniker", "val0", "--chain-id", "maxwell-gentx-1",
                  "--keyring-backend", "test", "--home", tmp_path)
    assert made.exit_code == 0, made.stderr
    collected = invoke("genesis", "collect-gentxs", "--home", tmp_path, "-o", "json")
    assert collected.exit_code == 0 and json.loads(collected.stdout)["gen_txs"] == 1, collected.stderr
    validated = invoke("genesis", "validate", "--home", tmp_path, "-o", "json")
    assert validated.exit_code == 0 and json.loads(validated.stdout)["validators"] == 1, validated.stderr
    genesis = json.loads((tmp_path / "config" / "genesis.json").read_text())
    assert genesis["validators"] == [] and len(genesis["app_state"]["genutil"]["gen_txs"]) == 1
    genesis["app_state"]["genutil"]["gen_txs"][0]["body"]["messages"][0]["value"]["amount"] = "999999999999999999"
    (tmp_path / "config" / "genesis.json").write_text(json.dumps(genesis))
    assert_one_line_error(invoke("genesis", "validate", "--home", tmp_path), "gen_txs[0] failed")


def test_staking_and_slashing_commands_answer_and_refuse_bad_input_in_one_line(devnet):
    """The dev chain has no staking validators: delegating to an account that runs none, or unjailing one,
    is refused by the chain with its code, and nothing is paid."""
    home, url = devnet
    common = ("--node", url, "--keyring-backend", "test", "--home", home)
    bob_operator = validators.format_operator(crypto.decode_address(keyring.get_key(home, "file", "bob").address))
    before = get_balance(home, url, "alice")
    assert_one_line_error(invoke("tx", "staking", "delegate", "alice", "nobody", "1000ujoule", *common),
                          "neither a validator address")
    assert_one_line_error(invoke("tx", "staking", "delegate", "alice", bob_operator, "1000ujoule", *common),
                          "tx rejected: code", "(staking)")
    assert_one_line_error(invoke("tx", "staking", "unbond", "alice", bob_operator, "0ujoule", *common),
                          "must be positive")
    assert_one_line_error(invoke("tx", "slashing", "unjail", "alice", *common),
                          "tx rejected: code 2 (slashing)", "not associated with any known validator")
    assert get_balance(home, url, "alice") == before
    assert_one_line_error(invoke("query", "staking", "validator", "mxwvaloper1xx", *common),
                          "neither a validator address")
    assert_one_line_error(invoke("query", "staking", "validator", bob_operator, *common), "not found")
    listed = invoke("query", "staking", "validators", "--node", url, "-o", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [], listed.stderr
    params = json.loads(invoke("query", "slashing", "params", "--node", url, "-o", "json").stdout)
    assert params["min_signed_per_window"] == "0.500000000000000000" and params["signed_blocks_window"] == "100"
    staking_params = json.loads(invoke("query", "staking", "params", "--node", url, "-o", "json").stdout)
    assert staking_params["bond_denom"] == "ujoule"


def test_version_and_long_version_say_what_is_installed():
    import importlib.metadata
    installed = importlib.metadata.version("maxwell")
    short = invoke("--version")
    assert short.exit_code == 0 and short.stdout.strip() == installed
    assert invoke("version").stdout.strip() == installed
    long = json.loads(invoke("version", "--long", "-o", "json").stdout)
    assert long["version"] == installed and len(long["commit"]) == 40
    assert f"protobuf@{importlib.metadata.version('protobuf')}" in long["build_deps"]


def test_gas_auto_simulates_and_yes_skips_the_prompt(devnet):
    home, url = devnet
    bob = keyring.get_key(home, "file", "bob").address
    common = ("--node", url, "--keyring-backend", "test", "--home", home, "-o", "json")
    auto = invoke("tx", "send", "alice", bob, "5ujoule", "--gas", "auto", "--gas-adjustment", "1.5", "-y", *common)
    assert auto.exit_code == 0, auto.stderr
    sent = json.loads(auto.stdout)
    assert int(sent["gas_used"]) < int(sent["gas_wanted"]) <= int(sent["gas_used"]) * 1.6
    assert int(sent["gas_wanted"]) < 200_000  # below the default limit: the fee follows the simulated gas
    assert_one_line_error(invoke("tx", "send", "alice", bob, "5ujoule", "--gas", "lots", *common), "invalid --gas")
    below = invoke("tx", "send", "alice", bob, "5ujoule", "--gas-adjustment", "0.5", *common)
    assert below.exit_code == 2 and "--gas-adjustment" in below.output  # refused by the option's own range


def test_gas_prices_set_the_fee_as_gas_times_price_on_every_tx_command(devnet):
    home, url = devnet
    bob = keyring.get_key(home, "file", "bob").address
    common = ("--node", url, "--keyring-backend", "test", "--home", home, "-o", "json")
    before = get_balance(home, url, "alice")
    priced = invoke("tx", "send", "alice", bob, "5ujoule", "--gas", "100000", "--gas-prices", "0.05ujoule", *common)
    assert priced.exit_code == 0, priced.stderr
    assert get_balance(home, url, "alice") == before - 5 - 5000  # 100000 gas x 0.05
    assert_one_line_error(invoke("tx", "send", "alice", bob, "5ujoule", "--fees", "9000ujoule", "--gas-prices",
                                 "0.05ujoule", *common), "--fees or --gas-prices, not both")
    assert_one_line_error(invoke("tx", "send", "alice", bob, "5ujoule", "--gas-prices", "cheap", *common),
                          "invalid --gas-prices")
    bid = ("tx", "market", "register-provider", "alice", "--models", "digits", "--stake", "1000000ujoule")  # another module
    assert_one_line_error(invoke(*bid, "--gas-prices", "0.001ujoule", *common), "insufficient fee")  # < the chain's
    before = get_balance(home, url, "alice")
    placed = invoke(*bid, "--gas", "120000", "--gas-prices", "0.05ujoule", *common)
    assert placed.exit_code == 0, placed.stderr
    assert get_balance(home, url, "alice") == before - 6000 - 1_000_000  # the fee (120000 x 0.05) and the stake
    unsigned = json.loads(invoke("tx", "send", ALICE, bob, "1ujoule", "--generate-only", "--gas", "10000",
                                 "--gas-prices", "0.1ujoule", "--node", url, "--home", home).stdout)
    assert unsigned["auth_info"]["fee"]["amount"] == [{"denom": "ujoule", "amount": "1000"}]


def test_query_balances_lists_every_denom(devnet):
    home, url = devnet
    shown = json.loads(invoke("query", "balances", "alice", "--node", url, "--keyring-backend", "test", "--home", home,
                              "-o", "json").stdout)
    assert shown["address"] == ALICE and [b["denom"] for b in shown["balances"]] == ["ujoule"]
    assert int(shown["balances"][0]["amount"]) > 0
    empty = invoke("query", "balances", crypto.encode_address(b"\x09" * 20), "--node", url)
    assert empty.exit_code == 0 and "nothing" in empty.stdout


def test_query_txs_finds_txs_by_their_events(devnet):
    home, url = devnet
    bob = keyring.get_key(home, "file", "bob").address
    sent = json.loads(invoke("tx", "send", "alice", bob, "3ujoule", "--node", url, "--keyring-backend", "test",
                             "--home", home, "-o", "json").stdout)
    found = json.loads(invoke("query", "txs", "--events", f"message.sender='{ALICE}'", "--order", "desc", "--limit", "5",
                              "--node", url, "-o", "json").stdout)
    assert int(found["total_count"]) >= 1 and found["txs"][0]["hash"] == sent["hash"]
    assert found["txs"][0]["messages"] == ["/cosmos.bank.v1beta1.MsgSend"]
    assert_one_line_error(invoke("query", "txs", "--events", "message.sender=", "--node", url), "")
    assert_one_line_error(invoke("query", "txs", "--events", "tx.height>0", "--order", "up", "--node", url),
                          "invalid --order")


def test_interchain_accounts_params_and_the_packet_data_the_host_runs(devnet):
    from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx_pb2
    from chain.proto.ibc.applications.interchain_accounts.v1 import packet_pb2
    home, url = devnet
    shown = invoke("query", "interchain-accounts", "host", "params", "--node", url)
    assert shown.exit_code == 0 and shown.stdout.splitlines() == ["host_enabled: true", 'allow_messages: ["*"]']
    assert json.loads(invoke("query", "ica", "controller", "params", "--node", url, "-o", "json").stdout) == {
        "controller_enabled": True}
    message = {"@type": "/cosmos.bank.v1beta1.MsgSend", "from_address": ALICE, "to_address": ALICE,
               "amount": [{"denom": "ujoule", "amount": "5"}]}
    generated = json.loads(invoke("tx", "ica", "host", "generate-packet-data", json.dumps(message), "--memo",
                                  "hi").stdout)
    assert (generated["type"], generated["memo"]) == ("TYPE_EXECUTE_TX", "hi")
    [packed] = packet_pb2.CosmosTx.FromString(base64.b64decode(generated["data"])).messages
    assert packed.type_url == message["@type"]
    assert bank_tx_pb2.MsgSend.FromString(packed.value).amount[0].amount == "5"
    as_json = json.loads(invoke("tx", "ica", "host", "generate-packet-data", json.dumps([message, message]),
                                "--encoding", "proto3json").stdout)
    assert json.loads(base64.b64decode(as_json["data"])) == {"messages": [message, message]}
    assert_one_line_error(invoke("tx", "ica", "host", "generate-packet-data", '{"@type": "/no.such.Msg"}'),
                          "invalid messages", "/no.such.Msg")


def test_offline_signing_generate_sign_elsewhere_then_broadcast(devnet, tmp_path):
    home, url = devnet
    bob = keyring.get_key(home, "file", "bob").address
    before = get_balance(home, url, bob)
    generated = invoke("tx", "send", ALICE, bob, "777ujoule", "--generate-only", "--node", url, "--home", home)
    assert generated.exit_code == 0, generated.stderr
    unsigned = json.loads(generated.stdout)
    assert unsigned["signatures"] == [] and unsigned["body"]["messages"][0]["@type"] == "/cosmos.bank.v1beta1.MsgSend"
    assert unsigned["auth_info"]["fee"] == {"amount": [{"denom": "ujoule", "amount": "5000"}], "gas_limit": "200000",
                                            "payer": "", "granter": ""}
    (tmp_path / "unsigned.json").write_text(generated.stdout)
    account = json.loads(invoke("query", "account", "alice", "--node", url, "--keyring-backend", "test", "--home", home,
                                "-o", "json").stdout)
    # the signing machine asks no node: the node flag points nowhere
    signed = invoke("tx", "sign", tmp_path / "unsigned.json", "--from", "alice", "--offline", "--chain-id", "maxwell-cli-1",
                    "--account-number", account["account_number"], "--sequence", account["sequence"],
                    "--keyring-backend", "test", "--home", home, "--node", "http://127.0.0.1:9", "--output-document",
                    tmp_path / "signed.json")
    assert signed.exit_code == 0, signed.stderr
    assert len(json.loads((tmp_path / "signed.json").read_text())["signatures"]) == 1
    assert_one_line_error(invoke("tx", "sign", tmp_path / "signed.json", "--from", "alice", "--keyring-backend", "test",
                                 "--home", home, "--node", url), "already signed")
    assert_one_line_error(invoke("tx", "sign", tmp_path / "unsigned.json", "--from", "bob", "--keyring-passphrase-file",
                                 home / "passphrase", "--home", home, "--node", url), "cannot sign for", ALICE)
    assert_one_line_error(invoke("tx", "sign", tmp_path / "unsigned.json", "--from", "alice", "--offline",
                                 "--keyring-backend", "test", "--home", home), "--account-number")
    assert_one_line_error(invoke("tx", "broadcast", tmp_path / "unsigned.json", "--node", url), "not signed")
    (tmp_path / "junk.json").write_text('{"body": 7}')
    assert_one_line_error(invoke("tx", "broadcast", tmp_path / "junk.json", "--node", url), "not a tx in JSON")
    broadcast = invoke("tx", "broadcast", tmp_path / "signed.json", "--node", url, "-o", "json")
    assert broadcast.exit_code == 0, broadcast.stderr
    assert json.loads(broadcast.stdout)["code"] == 0 and get_balance(home, url, bob) == before + 777
    again = invoke("tx", "broadcast", tmp_path / "signed.json", "--node", url)  # as CometBFT's mempool cache says
    assert_one_line_error(again, "tx already exists in cache")


HEAVY_PACKAGES = ("coincurve", "nacl", "bip32", "mnemonic", "rich", "ezkl", "onnx", "onnxruntime", "numpy", "grpc",
                  "plyvel", "aiohttp", "prometheus_client", "chain.app", "node.txclient")


def compute_loaded_modules(tmp_path: Path, *args: str) -> set[str]:
    """The modules `maxwell ARGS` has imported when it ends."""
    listing = tmp_path / "modules.json"
    script = (f"import json, sys\nsys.argv = ['maxwell', *{list(args)!r}]\nfrom node.main import main\n"
              f"try:\n    main()\nexcept SystemExit:\n    pass\n"
              f"open({str(listing)!r}, 'w').write(json.dumps(sorted(sys.modules)))")
    subprocess.run([str(MAXWELL.parent / "python"), "-c", script], capture_output=True, timeout=60, check=True)
    return set(json.loads(listing.read_text()))


def is_loaded(modules: set[str], package: str) -> bool:
    return any(module == package or module.startswith(package + ".") for module in modules)


def test_help_and_queries_import_only_what_they_use(tmp_path):
    """Start-up time is import time (make bench measures it against the 0.3 s target): --help loads no protobuf
    message, HTTP client or crypto library; a query loads its messages and the RPC client but nothing that signs,
    proves, serves or draws."""
    for args in (["--help"], ["tx", "--help"], ["query", "--help"], ["market", "--help"]):
        loaded = compute_loaded_modules(tmp_path, *args)
        assert "typer" in loaded
        assert not [p for p in (*HEAVY_PACKAGES, "http.client", "chain.proto", "node.client") if is_loaded(loaded, p)], args
    dead_node = f"http://127.0.0.1:{compute_free_port()}"
    for args in (["query", "balances", ALICE], ["market", "providers"], ["query", "staking", "validators"],
                 ["query", "ibc", "channels"]):
        loaded = compute_loaded_modules(tmp_path, *args, "--node", dead_node)
        assert is_loaded(loaded, "node.client") and is_loaded(loaded, "chain.proto"), args
        assert not [p for p in HEAVY_PACKAGES if is_loaded(loaded, p)], args
