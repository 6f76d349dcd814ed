"""The 07-tendermint light client fed what a real CometBFT 0.38 node serves: /commit and /validators of a
kvstore chain that adds a second (never signing) validator half way, so later commits carry an absent
signature and the validator set changes under the client.

Conflicting headers are signed with the node's own validator key, as a double-signing validator would.
"""

import base64
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request

import nacl.signing
import pytest

from chain.proto.tendermint.types import types_pb2, validator_pb2
from ibc import lightclient as lc
from ibc import tendermint
from localnet.network import COMETBFT
from tests import cometbft_json
from tests.helpers import compute_free_port

CHAIN_ID = "lightclient-1"
REVISION = 1
BLOCKS = 12
ADD_VALIDATOR_AT = 4
TRUSTING_PERIOD = 3600 * tendermint.NANOSECONDS_PER_SECOND
UNBONDING_PERIOD = 2 * TRUSTING_PERIOD
MAX_CLOCK_DRIFT = 10 * tendermint.NANOSECONDS_PER_SECOND
START_TIMEOUT_SECONDS = 60.0


def _rpc(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=5) as response:
        return json.loads(response.read())["result"]


def _set_option(config: str, section: str, key: str, value: str) -> str:
    """Sets `key = "value"` inside [section] of a CometBFT config.toml."""
    head, _, rest = config.partition(f"[{section}]\n")
    body, sep, tail = rest.partition("\n[")
    body, count = re.subn(rf'^{key} = .*$', f'{key} = "{value}"', body, count=1, flags=re.M)
    assert count == 1, f"{key} not in [{section}]"
    return f"{head}[{section}]\n{body}{sep}{tail}"


def _wait_for_height(url: str, height: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        assert process.poll() is None, f"cometbft exited with {process.returncode}"
        try:
            if int(_rpc(url, "/status")["sync_info"]["latest_block_height"]) >= height:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"cometbft did not reach height {height}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """Signed headers and validator sets of heights 1..BLOCKS, and the validator's signing key."""
    if not COMETBFT.is_file():
        pytest.fail(f"{COMETBFT} is missing: run `make tools`")
    home = tmp_path_factory.mktemp("cometbft")
    subprocess.run([str(COMETBFT), "init", "--home", str(home)], check=True, capture_output=True)
    genesis_path = home / "config" / "genesis.json"
    genesis = json.loads(genesis_path.read_text())
    genesis["chain_id"] = CHAIN_ID
    genesis_path.write_text(json.dumps(genesis))
    rpc_port, p2p_port = compute_free_port(), compute_free_port()
    config_path = home / "config" / "config.toml"
    config = config_path.read_text()
    config = _set_option(config, "rpc", "laddr", f"tcp://127.0.0.1:{rpc_port}")
    config = _set_option(config, "p2p", "laddr", f"tcp://127.0.0.1:{p2p_port}")
    config = _set_option(config, "consensus", "timeout_commit", "100ms")
    config_path.write_text(config)
    log = open(home / "cometbft.log", "w")
    process = subprocess.Popen([str(COMETBFT), "start", "--home", str(home), "--proxy_app=kvstore"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{rpc_port}"
    second = nacl.signing.SigningKey.generate()
    try:
        _wait_for_height(url, ADD_VALIDATOR_AT, process)
        new_validator = "val=ed25519!" + base64.b64encode(bytes(second.verify_key)).decode() + "!1"
        for tx in (new_validator, "light=client"):
            result = _rpc(url, f"/broadcast_tx_commit?tx=%22{urllib.parse.quote(tx)}%22")
            assert result["tx_result"]["code"] == 0, result
        _wait_for_height(url, BLOCKS + 1, process)
        blocks = {}
        for height in range(1, BLOCKS + 1):
            commit = _rpc(url, f"/commit?height={height}")["signed_header"]
            validators = _rpc(url, f"/validators?height={height}&per_page=100")
            blocks[height] = (cometbft_json.signed_header_from_json(commit),
                              cometbft_json.validator_set_from_json(validators))
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    key = json.loads((home / "config" / "priv_validator_key.json").read_text())
    signer = nacl.signing.SigningKey(base64.b64decode(key["priv_key"]["value"])[:32])
    return blocks, signer


def signed_header(chain, height: int) -> types_pb2.SignedHeader:
    return chain[0][height][0]


def validator_set(chain, height: int) -> validator_pb2.ValidatorSet:
    return chain[0][height][1]


def header_time(chain, height: int) -> int:
    return tendermint.compute_time_ns(signed_header(chain, height).header.time)


def make_header(chain, height: int, trusted_height: int, **changes) -> lc.Header:
    """The update a relayer sends for `height`, trusted from `trusted_height` (whose next validators are the
    validators of trusted_height + 1)."""
    sh = types_pb2.SignedHeader()
    sh.CopyFrom(signed_header(chain, height))
    for name, value in changes.items():
        setattr(sh.header, name, value)
    return lc.Header(sh, validator_set(chain, height), lc.Height(REVISION, trusted_height),
                     validator_set(chain, trusted_height + 1))


def make_client(chain, height: int = 1, chain_id: str = CHAIN_ID):
    header = signed_header(chain, height).header
    client_state = lc.ClientState(chain_id=chain_id, trusting_period=TRUSTING_PERIOD, unbonding_period=UNBONDING_PERIOD,
                                  max_clock_drift=MAX_CLOCK_DRIFT, latest_height=lc.Height(REVISION, height))
    lc.validate_client_state(client_state)
    consensus_state = lc.ConsensusState(tendermint.compute_time_ns(header.time), header.app_hash,
                                        header.next_validators_hash)
    return client_state, {lc.Height(REVISION, height): consensus_state}


def forge(chain, header: lc.Header, signer: nacl.signing.SigningKey, **changes) -> lc.Header:
    """`header` with changed fields, its commit re-signed by `signer` for the changed block."""
    sh = types_pb2.SignedHeader()
    sh.CopyFrom(header.signed_header)
    for name, value in changes.items():
        if name == "time":
            sh.header.time.CopyFrom(value)
        else:
            setattr(sh.header, name, value)
    sh.commit.block_id.hash = tendermint.compute_header_hash(sh.header)
    for index, sig in enumerate(sh.commit.signatures):
        if sig.block_id_flag == validator_pb2.BLOCK_ID_FLAG_COMMIT:
            vote = tendermint.compute_commit_vote(sh.commit, index)
            sig.signature = signer.sign(tendermint.compute_vote_sign_bytes(sh.header.chain_id, vote)).signature
    return lc.Header(sh, header.validator_set, header.trusted_height, header.trusted_validators)


# --- what the node served ----------------------------------------------------------------------


def test_node_changed_its_validator_set_and_commits_carry_an_absent_signature(blocks):
    assert len(validator_set(blocks, 1).validators) == 1
    assert len(validator_set(blocks, BLOCKS).validators) == 2
    flags = [s.block_id_flag for s in signed_header(blocks, BLOCKS).commit.signatures]
    assert flags == [validator_pb2.BLOCK_ID_FLAG_COMMIT, validator_pb2.BLOCK_ID_FLAG_ABSENT]
    assert signed_header(blocks, BLOCKS).header.app_hash != signed_header(blocks, 1).header.app_hash


def test_last_commit_hash_covers_absent_signatures(blocks):
    for height in range(1, BLOCKS):
        commit_hash = tendermint.compute_commit_hash(signed_header(blocks, height).commit)
        assert signed_header(blocks, height + 1).header.last_commit_hash == commit_hash


# --- updates -----------------------------------------------------------------------------------


def test_adjacent_updates_follow_the_chain_through_the_validator_set_change(blocks):
    client_state, consensus_states = make_client(blocks)
    for height in range(2, BLOCKS + 1):
        now = header_time(blocks, height) + tendermint.NANOSECONDS_PER_SECOND
        update = lc.update_client(client_state, consensus_states, make_header(blocks, height, height - 1), now)
        assert update.height == lc.Height(REVISION, height)
        assert update.consensus_state.root == signed_header(blocks, height).header.app_hash
        client_state = update.client_state
        consensus_states = {**consensus_states, update.height: update.consensus_state}
    assert client_state.latest_height == lc.Height(REVISION, BLOCKS)
    assert client_state.frozen_height == lc.ZERO_HEIGHT


def test_skipping_update_across_the_validator_set_change(blocks):
    client_state, consensus_states = make_client(blocks)
    header = make_header(blocks, BLOCKS, 1)
    assert header.validator_set != header.trusted_validators
    update = lc.update_client(client_state, consensus_states, header, header_time(blocks, BLOCKS) + 1)
    assert update.client_state.latest_height == lc.Height(REVISION, BLOCKS)
    assert update.consensus_state == lc.compute_consensus_state(header)


def test_repeated_update_changes_nothing(blocks):
    client_state, consensus_states = make_client(blocks)
    now = header_time(blocks, 3) + 1
    update = lc.update_client(client_state, consensus_states, make_header(blocks, 3, 1), now)
    states = {**consensus_states, update.height: update.consensus_state}
    again = lc.update_client(update.client_state, states, make_header(blocks, 3, 1), now)
    assert again.client_state == update.client_state
    assert again.consensus_state is None


# --- tampering ---------------------------------------------------------------------------------


def _update(blocks, header: lc.Header, now: int | None = None, chain_id: str = CHAIN_ID):
    client_state, consensus_states = make_client(blocks, header.trusted_height.revision_height, chain_id)
    height = header.signed_header.header.height
    return lc.update_client(client_state, consensus_states, header,
                            header_time(blocks, height) + 1 if now is None else now)


@pytest.mark.parametrize("height, trusted", [(2, 1), (BLOCKS, BLOCKS - 1), (BLOCKS, 1)])
def test_flipped_signature_byte_is_rejected(blocks, height, trusted):
    header = make_header(blocks, height, trusted)
    signature = bytearray(header.signed_header.commit.signatures[0].signature)
    signature[10] ^= 0x01
    header.signed_header.commit.signatures[0].signature = bytes(signature)
    with pytest.raises(lc.InvalidSignatureError, match="wrong signature"):
        _update(blocks, header)


def test_changed_app_hash_is_not_the_signed_block(blocks):
    header = make_header(blocks, 5, 4, app_hash=b"\xaa" * 8)
    assert header.signed_header.header.app_hash != signed_header(blocks, 5).header.app_hash
    with pytest.raises(lc.CommitBlockIdMismatchError, match="commit signs block"):
        _update(blocks, header)


def test_header_of_another_chain_id_is_rejected(blocks):
    with pytest.raises(lc.ChainIdMismatchError, match="header belongs to another chain"):
        _update(blocks, make_header(blocks, 5, 4), chain_id="otherchain-1")


def test_header_from_the_future_is_rejected(blocks):
    header = make_header(blocks, 5, 4)
    with pytest.raises(lc.HeaderFromFutureError):
        _update(blocks, header, now=header_time(blocks, 5) - MAX_CLOCK_DRIFT)
    assert _update(blocks, header, now=header_time(blocks, 5) - MAX_CLOCK_DRIFT + 1).height == lc.Height(REVISION, 5)


def test_trusted_state_past_the_trusting_period(blocks):
    header = make_header(blocks, 5, 4)
    expiry = header_time(blocks, 4) + TRUSTING_PERIOD
    with pytest.raises(lc.TrustingPeriodExpiredError):
        lc.verify_header(*_trusted(blocks, 4), header, expiry)
    lc.verify_header(*_trusted(blocks, 4), header, expiry - 1)
    with pytest.raises(lc.ClientExpiredError):
        _update(blocks, header, now=expiry)


def _trusted(blocks, height: int):
    client_state, consensus_states = make_client(blocks, height)
    return client_state, consensus_states[lc.Height(REVISION, height)]


def test_validator_set_of_another_height_is_rejected(blocks):
    header = make_header(blocks, BLOCKS, BLOCKS - 1)
    wrong = lc.Header(header.signed_header, validator_set(blocks, 1), header.trusted_height, header.trusted_validators)
    with pytest.raises(lc.ValidatorsHashMismatchError):
        _update(blocks, wrong)


def test_trusted_validators_must_be_the_trusted_next_validators(blocks):
    header = make_header(blocks, BLOCKS, 1)
    wrong = lc.Header(header.signed_header, header.validator_set, header.trusted_height, validator_set(blocks, BLOCKS))
    with pytest.raises(lc.TrustedValidatorsMismatchError):
        _update(blocks, wrong)


def test_header_signed_by_an_outsider_has_no_trust(blocks):
    outsider = nacl.signing.SigningKey.generate()
    header = forge(blocks, make_header(blocks, 5, 4), outsider, app_hash=b"\x01" * 8)
    with pytest.raises(lc.InvalidSignatureError):
        _update(blocks, header)


def test_rejected_update_leaves_the_client_unchanged(blocks):
    client_state, consensus_states = make_client(blocks)
    before = (client_state, dict(consensus_states))
    header = make_header(blocks, 3, 1, app_hash=b"\x02" * 8)
    with pytest.raises(lc.LightClientError):
        lc.update_client(client_state, consensus_states, header, header_time(blocks, 3) + 1)
    assert (client_state, consensus_states) == before


# --- misbehaviour ------------------------------------------------------------------------------


def test_conflicting_header_at_a_stored_height_freezes_the_client(blocks):
    _, signer = blocks
    client_state, consensus_states = make_client(blocks)
    now = header_time(blocks, 6) + 1
    update = lc.update_client(client_state, consensus_states, make_header(blocks, 6, 1), now)
    states = {**consensus_states, update.height: update.consensus_state}
    fork = forge(blocks, make_header(blocks, 6, 1), signer, app_hash=b"\xee" * 8)
    frozen = lc.update_client(update.client_state, states, fork, now)
    assert frozen.client_state.frozen_height == lc.FROZEN_HEIGHT
    assert frozen.consensus_state is None
    assert lc.get_client_status(frozen.client_state, states[update.height], now) == lc.STATUS_FROZEN
    with pytest.raises(lc.ClientFrozenError):
        lc.update_client(frozen.client_state, states, make_header(blocks, 7, 6), now)


def test_misbehaviour_of_two_commits_at_one_height_freezes_the_client(blocks):
    _, signer = blocks
    client_state, consensus_states = make_client(blocks)
    real = make_header(blocks, 8, 1)
    fork = forge(blocks, real, signer, app_hash=b"\xee" * 8)
    misbehaviour = lc.Misbehaviour("07-tendermint-0", fork, real)
    assert lc.is_misbehaviour(misbehaviour)
    update = lc.update_client(client_state, consensus_states, misbehaviour, header_time(blocks, 8) + 1)
    assert update.client_state.frozen_height == lc.FROZEN_HEIGHT


def test_misbehaviour_of_time_going_backwards_freezes_the_client(blocks):
    _, signer = blocks
    client_state, consensus_states = make_client(blocks)
    earlier = make_header(blocks, 7, 1)
    later = forge(blocks, make_header(blocks, 9, 1), signer, time=signed_header(blocks, 7).header.time)
    misbehaviour = lc.Misbehaviour("07-tendermint-0", later, earlier)
    update = lc.update_client(client_state, consensus_states, misbehaviour, header_time(blocks, 9) + 1)
    assert update.client_state.frozen_height == lc.FROZEN_HEIGHT


def test_header_out_of_time_order_with_stored_states_freezes_the_client(blocks):
    _, signer = blocks
    client_state, consensus_states = make_client(blocks)
    now = header_time(blocks, 9) + 1
    for height in (5, 9):
        update = lc.update_client(client_state, consensus_states, make_header(blocks, height, 1), now)
        client_state, consensus_states = update.client_state, {**consensus_states, update.height: update.consensus_state}
    between = forge(blocks, make_header(blocks, 7, 1), signer, time=signed_header(blocks, 9).header.time)
    assert lc.update_client(client_state, consensus_states, between, now).client_state.frozen_height == lc.FROZEN_HEIGHT


def test_two_copies_of_one_header_are_no_misbehaviour(blocks):
    client_state, consensus_states = make_client(blocks)
    header = make_header(blocks, 8, 1)
    misbehaviour = lc.Misbehaviour("07-tendermint-0", header, make_header(blocks, 8, 1))
    assert not lc.is_misbehaviour(misbehaviour)
    update = lc.update_client(client_state, consensus_states, misbehaviour, header_time(blocks, 8) + 1)
    assert update.client_state == client_state


def test_misbehaviour_signed_by_an_outsider_is_rejected(blocks):
    client_state, consensus_states = make_client(blocks)
    real = make_header(blocks, 8, 1)
    fork = forge(blocks, real, nacl.signing.SigningKey.generate(), app_hash=b"\xee" * 8)
    with pytest.raises(lc.InvalidSignatureError):
        lc.update_client(client_state, consensus_states, lc.Misbehaviour("07-tendermint-0", fork, real),
                         header_time(blocks, 8) + 1)
