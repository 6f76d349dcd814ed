"""CometBFT's JSON (RPC answers, light-client test vectors) as the protobuf messages the chain verifies."""

import base64

from chain.proto.tendermint.crypto import keys_pb2
from chain.proto.tendermint.types import types_pb2, validator_pb2
from ibc import tendermint

HEADER_HASH_FIELDS = ("last_commit_hash", "data_hash", "validators_hash", "next_validators_hash", "consensus_hash",
                      "app_hash", "last_results_hash", "evidence_hash", "proposer_address")

# tendermint-rs writes an absent signature's missing time as the Unix epoch (CometBFT as Go's zero time):
# on the wire such a signature has no timestamp at all.
UNIX_EPOCH = "1970-01-01T00:00:00Z"


def block_id_from_json(d: dict) -> types_pb2.BlockID:
    """CometBFT's RPC names the part set header "parts", tendermint-rs "part_set_header"."""
    psh = d["parts"] if "parts" in d else d["part_set_header"]
    return types_pb2.BlockID(
        hash=bytes.fromhex(d["hash"]),
        part_set_header=types_pb2.PartSetHeader(total=int(psh["total"]), hash=bytes.fromhex(psh["hash"])),
    )


def header_from_json(d: dict) -> types_pb2.Header:
    header = types_pb2.Header(chain_id=d["chain_id"], height=int(d["height"]))
    header.version.block = int(d["version"]["block"])
    header.version.app = int(d["version"].get("app", "0"))
    header.time.FromJsonString(d["time"])
    if d["last_block_id"]:
        header.last_block_id.CopyFrom(block_id_from_json(d["last_block_id"]))
    for name in HEADER_HASH_FIELDS:
        setattr(header, name, bytes.fromhex(d[name]))
    return header


def commit_from_json(d: dict) -> types_pb2.Commit:
    commit = types_pb2.Commit(height=int(d["height"]), round=int(d["round"]),
                              block_id=block_id_from_json(d["block_id"]))
    for s in d["signatures"]:
        sig = commit.signatures.add(
            block_id_flag=s["block_id_flag"],
            validator_address=bytes.fromhex(s["validator_address"] or ""),
            signature=base64.b64decode(s["signature"] or ""),
        )
        if not (s["block_id_flag"] == validator_pb2.BLOCK_ID_FLAG_ABSENT and s["timestamp"] == UNIX_EPOCH):
            sig.timestamp.FromJsonString(s["timestamp"])
    return commit


def signed_header_from_json(d: dict) -> types_pb2.SignedHeader:
    return types_pb2.SignedHeader(header=header_from_json(d["header"]), commit=commit_from_json(d["commit"]))


def validator_from_json(v: dict) -> validator_pb2.Validator:
    assert v["pub_key"]["type"] == "tendermint/PubKeyEd25519"
    return validator_pb2.Validator(
        address=bytes.fromhex(v["address"]),
        pub_key=keys_pb2.PublicKey(ed25519=base64.b64decode(v["pub_key"]["value"])),
        voting_power=int(v["voting_power"]),
    )


def validators_from_json(d: dict) -> list[validator_pb2.Validator]:
    return [validator_from_json(v) for v in d["validators"]]


def validator_set_from_json(d: dict) -> validator_pb2.ValidatorSet:
    """A ValidatorSet in CometBFT's order, as a relayer submits it; the proposer is the JSON's or the first."""
    validators = tendermint.sort_validators(validators_from_json(d))
    validator_set = validator_pb2.ValidatorSet(validators=validators)
    if d.get("proposer"):
        validator_set.proposer.CopyFrom(validator_from_json(d["proposer"]))
    elif validators:
        validator_set.proposer.CopyFrom(validators[0])
    validator_set.total_voting_power = sum(v.voting_power for v in validators)
    return validator_set
