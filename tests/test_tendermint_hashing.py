"""CometBFT hashing and sign bytes against Go-produced reference data."""

import hashlib
import json

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from chain import merkle
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.types import params_pb2, types_pb2, validator_pb2
from ibc import tendermint
from tests import cometbft_json
from tests.helpers import require_vectors

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _light_blocks() -> list[dict]:
    """Every (signed_header, validator_set, next_validator_set) in the light-client vectors."""
    files = sorted(require_vectors("lightclient").glob("*.json"))
    assert files, "the light-client vectors folder has no vectors"
    blocks = []
    for path in files:
        data = json.loads(path.read_text())
        blocks.extend(step["block"] for step in data["input"])
    return blocks


def test_merkle_root_matches_go_vectors():
    # crypto/merkle/tree_test.go TestHashFromByteSlices
    cases = [
        ([], EMPTY_SHA256),
        ([b"\x01\x02\x03"], "054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"),
        ([b""], "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        ([b"\x01\x02\x03", b"\x04\x05\x06"], "82e6cfce00453804379b53962939eaa7906b39904be0813fcadd31b100773c4b"),
        ([b"\x01\x02", b"\x03\x04", b"\x05\x06", b"\x07\x08", b"\x09\x0a"],
         "f326493eceab4f2d9ffbc78c59432a0a005d6ea98392045c74df5d14a113be18"),
    ]
    for items, expected in cases:
        assert merkle.compute_root(items).hex() == expected


def test_known_header_hash():
    # tendermint-rs block/header.rs header_hashing: a real CometBFT header and its block hash.
    d = json.loads(require_vectors("cometbft/header_with_known_hash.json").read_text())
    header = cometbft_json.header_from_json(d)
    assert tendermint.compute_header_hash(header).hex().upper() == (
        "F30A71F2409FB15AACAEDB6CC122DFA2525BEE9CAE521721B06BFDCA291B8D56")
    header.height += 1
    assert tendermint.compute_header_hash(header).hex().upper() != (
        "F30A71F2409FB15AACAEDB6CC122DFA2525BEE9CAE521721B06BFDCA291B8D56")


def test_go_header_hash_vector():
    # types/block_test.go TestHeaderHash
    def sha(s: bytes) -> bytes:
        return hashlib.sha256(s).digest()
    header = types_pb2.Header(
        chain_id="chainId", height=3,
        last_block_id=types_pb2.BlockID(hash=bytes(32), part_set_header=types_pb2.PartSetHeader(total=6, hash=bytes(32))),
        last_commit_hash=sha(b"last_commit_hash"), data_hash=sha(b"data_hash"),
        validators_hash=sha(b"validators_hash"), next_validators_hash=sha(b"next_validators_hash"),
        consensus_hash=sha(b"consensus_hash"), app_hash=sha(b"app_hash"),
        last_results_hash=sha(b"last_results_hash"), evidence_hash=sha(b"evidence_hash"),
        proposer_address=sha(b"proposer_address")[:20],
    )
    header.version.block, header.version.app = 1, 2
    header.time.FromJsonString("2019-10-13T16:14:44Z")
    assert tendermint.compute_header_hash(header).hex().upper() == (
        "F740121F553B5418C3EFBD343C2DBFE9E007BB67B0D020A0741374BAB65242A4")


def test_header_without_validators_hash_has_no_hash():
    with pytest.raises(tendermint.MissingValidatorsHashError):
        tendermint.compute_header_hash(types_pb2.Header(chain_id="c", height=1))


def test_empty_last_block_id_is_encoded_like_gogoproto():
    assert tendermint.encode_block_id(types_pb2.BlockID()) == b"\x12\x00"


def test_light_client_headers_hash_to_their_commit_block_id():
    blocks = _light_blocks()
    for block in blocks:
        sh = block["signed_header"]
        header = cometbft_json.header_from_json(sh["header"])
        assert tendermint.compute_header_hash(header).hex().upper() == sh["commit"]["block_id"]["hash"]


def test_light_client_validator_set_hashes():
    for block in _light_blocks():
        header = block["signed_header"]["header"]
        validators = cometbft_json.validators_from_json(block["validator_set"])
        next_validators = cometbft_json.validators_from_json(block["next_validator_set"])
        assert tendermint.compute_validator_set_hash(validators).hex().upper() == header["validators_hash"]
        assert tendermint.compute_validator_set_hash(next_validators).hex().upper() == header["next_validators_hash"]
        assert tendermint.compute_validator_set_hash(list(reversed(validators))).hex().upper() == header["validators_hash"]


def test_validator_address_is_truncated_sha256_of_ed25519_key():
    for block in _light_blocks()[:5]:
        for v in cometbft_json.validators_from_json(block["validator_set"]):
            assert tendermint.compute_validator_address(v.pub_key) == v.address


def _verify_commit(chain_id: str, commit: types_pb2.Commit, validators: list[validator_pb2.Validator]) -> int:
    """Number of valid COMMIT signatures by members of the set; raises BadSignatureError on a bad one."""
    keys = {v.address: VerifyKey(v.pub_key.ed25519) for v in validators}
    verified = 0
    for index, sig in enumerate(commit.signatures):
        if sig.block_id_flag != validator_pb2.BLOCK_ID_FLAG_COMMIT or sig.validator_address not in keys:
            continue
        vote = tendermint.compute_commit_vote(commit, index)
        keys[sig.validator_address].verify(tendermint.compute_vote_sign_bytes(chain_id, vote), sig.signature)
        verified += 1
    return verified


def test_light_client_commit_signatures_verify_over_vote_sign_bytes():
    verified = 0
    for block in _light_blocks():
        sh = block["signed_header"]
        commit = cometbft_json.commit_from_json(sh["commit"])
        validators = cometbft_json.validators_from_json(block["validator_set"])
        verified += _verify_commit(sh["header"]["chain_id"], commit, validators)
    assert verified > 100


def test_commit_signature_fails_for_other_chain_id():
    block = _light_blocks()[0]
    commit = cometbft_json.commit_from_json(block["signed_header"]["commit"])
    with pytest.raises(BadSignatureError):
        _verify_commit("other-chain", commit, cometbft_json.validators_from_json(block["validator_set"]))


def test_vote_sign_bytes_match_go_vectors():
    # types/vote_test.go TestVoteSignBytesTestVectors (a Go zero Vote has timestamp 0001-01-01)
    zero_time = "2a0b088092b8c398feffffff01"
    one = "0100000000000000"
    precommit = types_pb2.SIGNED_MSG_TYPE_PRECOMMIT
    prevote = types_pb2.SIGNED_MSG_TYPE_PREVOTE
    cases = [
        ("", {}, "0d" + zero_time),
        ("", {"height": 1, "round": 1, "type": precommit}, "21" + "0802" + "11" + one + "19" + one + zero_time),
        ("", {"height": 1, "round": 1, "type": prevote}, "21" + "0801" + "11" + one + "19" + one + zero_time),
        ("", {"height": 1, "round": 1}, "1f" + "11" + one + "19" + one + zero_time),
        ("test_chain_id", {"height": 1, "round": 1},
         "2e" + "11" + one + "19" + one + zero_time + "320d" + b"test_chain_id".hex()),
        ("test_chain_id", {"height": 1, "round": 1, "extension": b"extension"},
         "2e" + "11" + one + "19" + one + zero_time + "320d" + b"test_chain_id".hex()),
    ]
    for chain_id, fields, expected in cases:
        vote = types_pb2.Vote(**fields)
        vote.timestamp.seconds = tendermint.GO_ZERO_TIME_SECONDS
        assert tendermint.compute_vote_sign_bytes(chain_id, vote).hex() == expected


def test_vote_sign_bytes_include_block_id_with_part_set_header():
    vote = types_pb2.Vote(type=types_pb2.SIGNED_MSG_TYPE_PRECOMMIT, height=2,
                          block_id=types_pb2.BlockID(hash=b"\xab" * 32))
    body = tendermint.compute_vote_sign_bytes("c", vote)[1:]
    # block_id {hash, part_set_header {}} then timestamp {} then chain_id
    assert body.endswith(b"\x22\x24\x0a\x20" + b"\xab" * 32 + b"\x12\x00" + b"\x2a\x00" + b"\x32\x01c")


def test_vote_extension_sign_bytes():
    vote = types_pb2.Vote(height=5, round=2, extension=b"heat")
    expected = (b"\x0a\x04heat" + b"\x11" + (5).to_bytes(8, "little") + b"\x19" + (2).to_bytes(8, "little")
                + b"\x22\x07chain-a")
    assert tendermint.compute_vote_extension_sign_bytes("chain-a", vote) == bytes([len(expected)]) + expected


def test_default_consensus_params_hash_matches_real_header():
    # The known header's chain ran CometBFT's defaults: block max_bytes 22020096, max_gas -1.
    d = json.loads(require_vectors("cometbft/header_with_known_hash.json").read_text())
    params = params_pb2.ConsensusParams(block=params_pb2.BlockParams(max_bytes=22020096, max_gas=-1))
    assert tendermint.compute_consensus_params_hash(params).hex().upper() == d["consensus_hash"]


def test_data_and_results_hash_of_empty_block():
    assert tendermint.compute_data_hash([]).hex() == EMPTY_SHA256
    assert tendermint.compute_results_hash([]).hex() == EMPTY_SHA256


def test_data_hash_leaves_are_tx_hashes():
    txs = [b"a", b"bb"]
    assert tendermint.compute_tx_hash(b"a") == hashlib.sha256(b"a").digest()
    assert tendermint.compute_data_hash(txs) == merkle.compute_root(
        [hashlib.sha256(tx).digest() for tx in txs])


def test_results_hash_ignores_nondeterministic_fields():
    plain = abci_pb2.ExecTxResult(code=14, data=b"foo", gas_wanted=10, gas_used=7)
    noisy = abci_pb2.ExecTxResult(code=14, data=b"foo", gas_wanted=10, gas_used=7, log="x", info="y",
                                  codespace="bank", events=[abci_pb2.Event(type="transfer")])
    assert tendermint.compute_results_hash([plain]) == tendermint.compute_results_hash([noisy])
    assert tendermint.compute_results_hash([plain]) == merkle.compute_root(
        [b"\x08\x0e\x12\x03foo\x28\x0a\x30\x07"])
    changed = abci_pb2.ExecTxResult(code=0, data=b"foo", gas_wanted=10, gas_used=7)
    assert tendermint.compute_results_hash([changed]) != tendermint.compute_results_hash([plain])


def test_commit_hash_encodes_absent_signature_timestamps():
    commit = types_pb2.Commit(height=3, signatures=[
        types_pb2.CommitSig(block_id_flag=validator_pb2.BLOCK_ID_FLAG_ABSENT),
        types_pb2.CommitSig(block_id_flag=validator_pb2.BLOCK_ID_FLAG_COMMIT, validator_address=b"\x01" * 20,
                            signature=b"\x02" * 64),
    ])
    commit.signatures[1].timestamp.seconds = 7
    assert tendermint.compute_commit_hash(commit) == merkle.compute_root([
        b"\x08\x01\x1a\x00",
        b"\x08\x02\x12\x14" + b"\x01" * 20 + b"\x1a\x02\x08\x07" + b"\x22\x40" + b"\x02" * 64,
    ])


def test_part_set_header():
    small = tendermint.compute_part_set_header(b"block")
    assert small.total == 1
    assert small.hash == hashlib.sha256(b"\x00block").digest()
    data = bytes(range(256)) * 600  # 153600 bytes: 3 parts of 64 KiB
    header = tendermint.compute_part_set_header(data)
    assert header.total == 3
    assert header.hash == merkle.compute_root([data[:65536], data[65536:131072], data[131072:]])
    with pytest.raises(tendermint.EmptyBlockError):
        tendermint.compute_part_set_header(b"")
