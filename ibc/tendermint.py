"""CometBFT 0.38 hashing and sign bytes, byte for byte as the Go implementation.

CometBFT marshals with gogoproto, which writes non-nullable sub-messages (timestamps,
a BlockID's part_set_header, ...) even when they are empty. Python protobuf only
writes a sub-message that is present, so the encoders below mark those fields
present before serializing.
"""

import hashlib

from google.protobuf import timestamp_pb2
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from chain import crypto, merkle
from chain.encoding import encode_uvarint
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.crypto import keys_pb2
from chain.proto.tendermint.types import canonical_pb2, params_pb2, types_pb2, validator_pb2

BLOCK_PART_SIZE_BYTES = 65536
ADDRESS_SIZE = 20
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
NANOSECONDS_PER_SECOND = 1_000_000_000
# Go's zero time.Time (0001-01-01T00:00:00Z) as Unix seconds: the time of an absent commit signature.
GO_ZERO_TIME_SECONDS = -62135596800


class TendermintError(Exception):
    """Base error of the CometBFT hashing functions."""


class MissingValidatorsHashError(TendermintError):
    """A header without validators_hash has no hash (Go returns nil)."""


class EmptyBlockError(TendermintError):
    """A part set needs at least one byte of block data."""


class InvalidPartSizeError(TendermintError):
    """Block parts must have a positive size."""


class UnknownPublicKeyError(TendermintError):
    """The public key is neither ed25519 nor secp256k1."""


class CommitSigIndexError(TendermintError):
    """The commit has no signature at that index."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def compute_tx_hash(tx: bytes) -> bytes:
    return _sha256(tx)


def compute_data_hash(txs: list[bytes]) -> bytes:
    return merkle.compute_root([compute_tx_hash(tx) for tx in txs])


def _encode_string_value(value: str) -> bytes:
    """cdcEncode(string): gogotypes.StringValue, nothing at all for an empty string."""
    if not value:
        return b""
    raw = value.encode()
    return b"\x0a" + encode_uvarint(len(raw)) + raw


def _encode_int64_value(value: int) -> bytes:
    """cdcEncode(int64): gogotypes.Int64Value (a zero value is an empty message)."""
    if value == 0:
        return b""
    return b"\x08" + encode_uvarint(value & 0xFFFFFFFFFFFFFFFF)


def _encode_bytes_value(value: bytes) -> bytes:
    """cdcEncode(HexBytes): gogotypes.BytesValue, nothing at all for empty bytes."""
    if not value:
        return b""
    return b"\x0a" + encode_uvarint(len(value)) + value


def encode_block_id(block_id: types_pb2.BlockID) -> bytes:
    """BlockID as gogoproto writes it: part_set_header always present."""
    message = types_pb2.BlockID()
    message.CopyFrom(block_id)
    message.part_set_header.SetInParent()
    return message.SerializeToString()


def encode_commit_sig(commit_sig: types_pb2.CommitSig) -> bytes:
    """CommitSig as gogoproto writes it: timestamp always present."""
    message = types_pb2.CommitSig()
    message.CopyFrom(commit_sig)
    message.timestamp.SetInParent()
    return message.SerializeToString()


def compute_header_hash(header: types_pb2.Header) -> bytes:
    """Merkle root of the header fields as types/block.go Header.Hash."""
    if not header.validators_hash:
        raise MissingValidatorsHashError("header has no validators_hash")
    return merkle.compute_root([
        header.version.SerializeToString(),
        _encode_string_value(header.chain_id),
        _encode_int64_value(header.height),
        header.time.SerializeToString(),
        encode_block_id(header.last_block_id),
        _encode_bytes_value(header.last_commit_hash),
        _encode_bytes_value(header.data_hash),
        _encode_bytes_value(header.validators_hash),
        _encode_bytes_value(header.next_validators_hash),
        _encode_bytes_value(header.consensus_hash),
        _encode_bytes_value(header.app_hash),
        _encode_bytes_value(header.last_results_hash),
        _encode_bytes_value(header.evidence_hash),
        _encode_bytes_value(header.proposer_address),
    ])


def compute_consensus_address(ed25519_public_key: bytes) -> bytes:
    """CometBFT's address of an ed25519 validator key: sha256(key)[:20]."""
    return _sha256(ed25519_public_key)[:ADDRESS_SIZE]


def compute_validator_address(pub_key: keys_pb2.PublicKey) -> bytes:
    """ed25519: sha256(key)[:20]; secp256k1: ripemd160(sha256(key))."""
    kind = pub_key.WhichOneof("sum")
    if kind == "ed25519":
        return compute_consensus_address(pub_key.ed25519)
    if kind == "secp256k1":
        return hashlib.new("ripemd160", _sha256(pub_key.secp256k1)).digest()
    raise UnknownPublicKeyError("public key has no ed25519 or secp256k1 value")


def is_valid_signature(pub_key: keys_pb2.PublicKey, message: bytes, signature: bytes) -> bool:
    """A validator's signature as CometBFT checks it: ed25519 over the message, secp256k1 low-S over its sha256."""
    kind = pub_key.WhichOneof("sum")
    if kind == "ed25519":
        if len(pub_key.ed25519) != ED25519_PUBLIC_KEY_SIZE or len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            VerifyKey(pub_key.ed25519).verify(message, signature)
        except BadSignatureError:
            return False
        return True
    if kind == "secp256k1":
        return crypto.is_valid_signature(pub_key.secp256k1, signature, message)
    raise UnknownPublicKeyError("public key has no ed25519 or secp256k1 value")


def compute_time_ns(timestamp: timestamp_pb2.Timestamp) -> int:
    """Nanoseconds since the Unix epoch: the integer time the light client compares."""
    return timestamp.seconds * NANOSECONDS_PER_SECOND + timestamp.nanos


def sort_validators(validators: list[validator_pb2.Validator]) -> list[validator_pb2.Validator]:
    """The order a CometBFT ValidatorSet keeps: voting power descending, then address."""
    return sorted(validators, key=lambda v: (-v.voting_power, v.address))


def compute_validator_set_hash(validators: list[validator_pb2.Validator]) -> bytes:
    """Merkle root of SimpleValidator{pub_key, voting_power} in validator set order."""
    return merkle.compute_root([
        validator_pb2.SimpleValidator(pub_key=v.pub_key, voting_power=v.voting_power).SerializeToString()
        for v in sort_validators(validators)
    ])


def compute_results_hash(exec_tx_results: list[abci_pb2.ExecTxResult]) -> bytes:
    """Merkle root of the deterministic fields of each result (types/results.go)."""
    return merkle.compute_root([
        abci_pb2.ExecTxResult(
            code=r.code, data=r.data, gas_wanted=r.gas_wanted, gas_used=r.gas_used
        ).SerializeToString()
        for r in exec_tx_results
    ])


def compute_consensus_params_hash(params: params_pb2.ConsensusParams) -> bytes:
    """sha256 of HashedParams{block_max_bytes, block_max_gas} (a plain hash, not a merkle root)."""
    hashed = params_pb2.HashedParams(
        block_max_bytes=params.block.max_bytes, block_max_gas=params.block.max_gas
    )
    return _sha256(hashed.SerializeToString())


def compute_commit_hash(commit: types_pb2.Commit) -> bytes:
    return merkle.compute_root([encode_commit_sig(sig) for sig in commit.signatures])


def is_zero_block_id(block_id: types_pb2.BlockID) -> bool:
    return not block_id.hash and block_id.part_set_header.total == 0 and not block_id.part_set_header.hash


def compute_canonical_vote(chain_id: str, vote: types_pb2.Vote) -> canonical_pb2.CanonicalVote:
    canonical = canonical_pb2.CanonicalVote(
        type=vote.type, height=vote.height, round=vote.round, timestamp=vote.timestamp, chain_id=chain_id
    )
    canonical.timestamp.SetInParent()
    if not is_zero_block_id(vote.block_id):
        canonical.block_id.hash = vote.block_id.hash
        canonical.block_id.part_set_header.total = vote.block_id.part_set_header.total
        canonical.block_id.part_set_header.hash = vote.block_id.part_set_header.hash
        canonical.block_id.part_set_header.SetInParent()
    return canonical


def compute_vote_sign_bytes(chain_id: str, vote: types_pb2.Vote) -> bytes:
    """Length-delimited CanonicalVote, as types/vote.go VoteSignBytes."""
    body = compute_canonical_vote(chain_id, vote).SerializeToString()
    return encode_uvarint(len(body)) + body


def compute_vote_extension_sign_bytes(chain_id: str, vote: types_pb2.Vote) -> bytes:
    """Length-delimited CanonicalVoteExtension, as types/vote.go VoteExtensionSignBytes."""
    body = canonical_pb2.CanonicalVoteExtension(
        extension=vote.extension, height=vote.height, round=vote.round, chain_id=chain_id
    ).SerializeToString()
    return encode_uvarint(len(body)) + body


def compute_commit_vote(commit: types_pb2.Commit, index: int) -> types_pb2.Vote:
    """The precommit a commit signature signed (types/block.go Commit.GetVote)."""
    if not 0 <= index < len(commit.signatures):
        raise CommitSigIndexError(f"commit has {len(commit.signatures)} signatures, no index {index}")
    sig = commit.signatures[index]
    vote = types_pb2.Vote(
        type=types_pb2.SIGNED_MSG_TYPE_PRECOMMIT,
        height=commit.height,
        round=commit.round,
        timestamp=sig.timestamp,
        validator_address=sig.validator_address,
        validator_index=index,
        signature=sig.signature,
    )
    if sig.block_id_flag == validator_pb2.BLOCK_ID_FLAG_COMMIT:
        vote.block_id.CopyFrom(commit.block_id)
    return vote


def compute_part_set_header(
    block_bytes: bytes, part_size: int = BLOCK_PART_SIZE_BYTES
) -> types_pb2.PartSetHeader:
    """Header of the part set CometBFT gossips a marshalled block in (types/part_set.go)."""
    if part_size <= 0:
        raise InvalidPartSizeError(f"part size must be positive, got {part_size}")
    if not block_bytes:
        raise EmptyBlockError("cannot split empty block bytes into parts")
    parts = [block_bytes[i:i + part_size] for i in range(0, len(block_bytes), part_size)]
    return types_pb2.PartSetHeader(total=len(parts), hash=merkle.compute_root(parts))
