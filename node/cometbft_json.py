"""CometBFT 0.38's JSON for its types and the ABCI results, as its RPC writes them and genesis.json holds them.

int64 as decimal strings, []byte as base64, HexBytes as upper hex, times as RFC3339Nano, and the
jsonpb encoding (defaults emitted) for the ABCI results that CometBFT marshals with jsonpb (CheckTx,
ExecTxResult, Query, EventAttribute).
"""

import base64
import calendar
import re
import time

from google.protobuf import timestamp_pb2

from chain import merkle
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.crypto import keys_pb2
from chain.proto.tendermint.types import block_pb2, params_pb2, types_pb2, validator_pb2
from ibc.tendermint import compute_data_hash, compute_tx_hash

PUB_KEY_ED25519 = "tendermint/PubKeyEd25519"
PUB_KEY_SECP256K1 = "tendermint/PubKeySecp256k1"
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
INT_STRING_PATTERN = re.compile(r"-?[0-9]+")
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                      r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})")


class InvalidTime(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Scalars


def parse_time_ns(text: str) -> int:
    """RFC3339 (nanosecond precision) to Unix nanoseconds."""
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidTime(f"{text!r} is not an RFC3339 time")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second))
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
                and hour < 24 and minute < 60 and second < 60):
            raise ValueError
    except ValueError:
        raise InvalidTime(f"{text!r} is not a valid date and time") from None
    nanos = int((m.group(7) or "").ljust(9, "0"))
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 10**9 + nanos


def format_time_ns(ns: int) -> str:
    """Go's time.Time JSON (RFC3339Nano, UTC, trailing fraction zeros dropped)."""
    seconds, nanos = divmod(ns, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def compute_timestamp(ns: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(ns, 10**9)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def compute_time_ns(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 10**9 + ts.nanos


def encode_hex(data: bytes) -> str:
    return data.hex().upper()


def encode_base64(data: bytes) -> str | None:
    """Go []byte: a nil slice (what an empty proto field decodes to) is null."""
    return base64.b64encode(data).decode() if data else None


# ---------------------------------------------------------------------------------------------
# CometBFT types (types/*.go through libs/json)


def encode_block_id(block_id: types_pb2.BlockID) -> dict:
    return {
        "hash": encode_hex(block_id.hash),
        "parts": {"total": block_id.part_set_header.total, "hash": encode_hex(block_id.part_set_header.hash)},
    }


def encode_header(header: types_pb2.Header) -> dict:
    version = {"block": str(header.version.block)}
    if header.version.app:
        version["app"] = str(header.version.app)
    return {
        "version": version,
        "chain_id": header.chain_id,
        "height": str(header.height),
        "time": format_time_ns(compute_time_ns(header.time)),
        "last_block_id": encode_block_id(header.last_block_id),
        "last_commit_hash": encode_hex(header.last_commit_hash),
        "data_hash": encode_hex(header.data_hash),
        "validators_hash": encode_hex(header.validators_hash),
        "next_validators_hash": encode_hex(header.next_validators_hash),
        "consensus_hash": encode_hex(header.consensus_hash),
        "app_hash": encode_hex(header.app_hash),
        "last_results_hash": encode_hex(header.last_results_hash),
        "evidence_hash": encode_hex(header.evidence_hash),
        "proposer_address": encode_hex(header.proposer_address),
    }


def encode_commit(commit: types_pb2.Commit) -> dict:
    return {
        "height": str(commit.height),
        "round": commit.round,
        "block_id": encode_block_id(commit.block_id),
        "signatures": [
            {
                "block_id_flag": sig.block_id_flag,
                "validator_address": encode_hex(sig.validator_address),
                "timestamp": format_time_ns(compute_time_ns(sig.timestamp)),
                "signature": encode_base64(sig.signature),
            }
            for sig in commit.signatures
        ],
    }


def encode_block(block: block_pb2.Block) -> dict:
    return {
        "header": encode_header(block.header),
        "data": {"txs": [base64.b64encode(tx).decode() for tx in block.data.txs]},
        "evidence": {"evidence": []},
        "last_commit": encode_commit(block.last_commit),
    }


def encode_block_meta(meta: types_pb2.BlockMeta) -> dict:
    return {
        "block_id": encode_block_id(meta.block_id),
        "block_size": str(meta.block_size),
        "header": encode_header(meta.header),
        "num_txs": str(meta.num_txs),
    }


def encode_pub_key(pub_key: keys_pb2.PublicKey) -> dict:
    if pub_key.WhichOneof("sum") == "secp256k1":
        return {"type": PUB_KEY_SECP256K1, "value": base64.b64encode(pub_key.secp256k1).decode()}
    return {"type": PUB_KEY_ED25519, "value": base64.b64encode(pub_key.ed25519).decode()}


def decode_pub_key(obj) -> keys_pb2.PublicKey:
    if not isinstance(obj, dict) or not isinstance(obj.get("value"), str):
        raise ValueError("pub_key must be {\"type\": ..., \"value\": <base64>}")
    try:
        raw = base64.b64decode(obj["value"], validate=True)
    except ValueError:
        raise ValueError("pub_key value is not base64") from None
    if obj.get("type") == PUB_KEY_ED25519 and len(raw) == 32:
        return keys_pb2.PublicKey(ed25519=raw)
    if obj.get("type") == PUB_KEY_SECP256K1 and len(raw) == 33:
        return keys_pb2.PublicKey(secp256k1=raw)
    raise ValueError(f"unsupported pub_key {obj.get('type')!r} of {len(raw)} bytes")


def encode_validator(validator: validator_pb2.Validator) -> dict:
    return {
        "address": encode_hex(validator.address),
        "pub_key": encode_pub_key(validator.pub_key),
        "voting_power": str(validator.voting_power),
        "proposer_priority": str(validator.proposer_priority),
    }


def encode_consensus_params(params: params_pb2.ConsensusParams) -> dict:
    """types.ConsensusParams (every field present)."""
    duration = params.evidence.max_age_duration
    return {
        "block": {"max_bytes": str(params.block.max_bytes), "max_gas": str(params.block.max_gas)},
        "evidence": {
            "max_age_num_blocks": str(params.evidence.max_age_num_blocks),
            "max_age_duration": str(duration.seconds * 10**9 + duration.nanos),
            "max_bytes": str(params.evidence.max_bytes),
        },
        "validator": {"pub_key_types": list(params.validator.pub_key_types)},
        "version": {"app": str(params.version.app)},
        "abci": {"vote_extensions_enable_height": str(params.abci.vote_extensions_enable_height)},
    }


def encode_consensus_param_updates(params: params_pb2.ConsensusParams) -> dict:
    """cmtproto.ConsensusParams (only the sections present, zero values omitted)."""
    out = {}
    if params.HasField("block"):
        out["block"] = {k: str(v) for k, v in (("max_bytes", params.block.max_bytes),
                                                 ("max_gas", params.block.max_gas)) if v}
    if params.HasField("evidence"):
        e = params.evidence
        evidence = {"max_age_num_blocks": str(e.max_age_num_blocks)} if e.max_age_num_blocks else {}
        evidence["max_age_duration"] = str(e.max_age_duration.seconds * 10**9 + e.max_age_duration.nanos)
        if e.max_bytes:
            evidence["max_bytes"] = str(e.max_bytes)
        out["evidence"] = evidence
    if params.HasField("validator"):
        out["validator"] = {"pub_key_types": list(params.validator.pub_key_types)} \
            if params.validator.pub_key_types else {}
    if params.HasField("version"):
        out["version"] = {"app": str(params.version.app)} if params.version.app else {}
    if params.HasField("abci"):
        height = params.abci.vote_extensions_enable_height
        out["abci"] = {"vote_extensions_enable_height": str(height)} if height else {}
    return out


def decode_int64_field(obj: dict, name: str, default: int) -> int:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} must be an integer string")
    if isinstance(value, str):
        if not INT_STRING_PATTERN.fullmatch(value):
            raise ValueError(f"{name} must be an integer string, got {value!r}")
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{name} out of int64 range")
    return value


def decode_consensus_params(obj, defaults: params_pb2.ConsensusParams) -> params_pb2.ConsensusParams:
    """types.ConsensusParams JSON (as in genesis.json); missing sections keep the defaults."""
    params = params_pb2.ConsensusParams()
    params.CopyFrom(defaults)
    if obj is None:
        return params
    if not isinstance(obj, dict):
        raise ValueError("consensus_params must be an object")
    block = obj.get("block") or {}
    evidence = obj.get("evidence") or {}
    validator = obj.get("validator") or {}
    version = obj.get("version") or {}
    abci = obj.get("abci") or {}
    for section in (block, evidence, validator, version, abci):
        if not isinstance(section, dict):
            raise ValueError("consensus_params sections must be objects")
    params.block.max_bytes = decode_int64_field(block, "max_bytes", params.block.max_bytes)
    params.block.max_gas = decode_int64_field(block, "max_gas", params.block.max_gas)
    params.evidence.max_age_num_blocks = decode_int64_field(evidence, "max_age_num_blocks",
                                                    params.evidence.max_age_num_blocks)
    old = params.evidence.max_age_duration
    duration = decode_int64_field(evidence, "max_age_duration", old.seconds * 10**9 + old.nanos)
    params.evidence.max_age_duration.seconds, params.evidence.max_age_duration.nanos = divmod(duration, 10**9)
    params.evidence.max_bytes = decode_int64_field(evidence, "max_bytes", params.evidence.max_bytes)
    if "pub_key_types" in validator:
        types = validator["pub_key_types"]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValueError("pub_key_types must be a list of strings")
        del params.validator.pub_key_types[:]
        params.validator.pub_key_types.extend(types)
    params.version.app = decode_int64_field(version, "app", params.version.app)
    params.abci.vote_extensions_enable_height = decode_int64_field(abci, "vote_extensions_enable_height",
                                                           params.abci.vote_extensions_enable_height)
    return params


# ---------------------------------------------------------------------------------------------
# ABCI types


def encode_attribute(attr: abci_pb2.EventAttribute) -> dict:
    return {"key": attr.key, "value": attr.value, "index": attr.index}


def encode_event(event: abci_pb2.Event) -> dict:
    """abci.Event through libs/json (empty fields omitted)."""
    out = {}
    if event.type:
        out["type"] = event.type
    if event.attributes:
        out["attributes"] = [encode_attribute(a) for a in event.attributes]
    return out


def _encode_jsonpb_event(event: abci_pb2.Event) -> dict:
    return {"type": event.type, "attributes": [encode_attribute(a) for a in event.attributes]}


def encode_exec_tx_result(result: abci_pb2.ExecTxResult) -> dict:
    """jsonpb with defaults, as CometBFT marshals ExecTxResult and ResponseCheckTx."""
    return {
        "code": result.code,
        "data": encode_base64(result.data),
        "log": result.log,
        "info": result.info,
        "gas_wanted": str(result.gas_wanted),
        "gas_used": str(result.gas_used),
        "events": [_encode_jsonpb_event(e) for e in result.events],
        "codespace": result.codespace,
    }


encode_check_tx = encode_exec_tx_result


def encode_query_response(response: abci_pb2.ResponseQuery) -> dict:
    proof_ops = None
    if response.HasField("proof_ops"):
        proof_ops = {"ops": [{"type": op.type, "key": encode_base64(op.key), "data": encode_base64(op.data)}
                             for op in response.proof_ops.ops]}
    return {
        "code": response.code,
        "log": response.log,
        "info": response.info,
        "index": str(response.index),
        "key": encode_base64(response.key),
        "value": encode_base64(response.value),
        "proofOps": proof_ops,
        "height": str(response.height),
        "codespace": response.codespace,
    }


def encode_info_response(response: abci_pb2.ResponseInfo) -> dict:
    out = {}
    if response.data:
        out["data"] = response.data
    if response.version:
        out["version"] = response.version
    if response.app_version:
        out["app_version"] = str(response.app_version)
    if response.last_block_height:
        out["last_block_height"] = str(response.last_block_height)
    if response.last_block_app_hash:
        out["last_block_app_hash"] = encode_base64(response.last_block_app_hash)
    return out


def encode_finalize_block(response: abci_pb2.ResponseFinalizeBlock) -> dict:
    out = {}
    if response.events:
        out["events"] = [encode_event(e) for e in response.events]
    if response.tx_results:
        out["tx_results"] = [encode_exec_tx_result(r) for r in response.tx_results]
    out["validator_updates"] = None
    if response.HasField("consensus_param_updates"):
        out["consensus_param_updates"] = encode_consensus_param_updates(response.consensus_param_updates)
    if response.app_hash:
        out["app_hash"] = encode_base64(response.app_hash)
    return out


def encode_tx_event_value(height: int, index: int, tx: bytes, result: abci_pb2.ExecTxResult) -> dict:
    """abci.TxResult through libs/json (zero height/index/tx omitted)."""
    out = {}
    if height:
        out["height"] = str(height)
    if index:
        out["index"] = index
    if tx:
        out["tx"] = encode_base64(tx)
    out["result"] = encode_exec_tx_result(result)
    return out


def encode_tx_proof(txs: list[bytes], index: int) -> dict:
    """crypto/merkle.Proof of txs[index] in the block's data hash."""
    tx_hashes = [compute_tx_hash(tx) for tx in txs]
    leaf, aunts = merkle.compute_leaf_hash(tx_hashes[index]), merkle.compute_aunts(tx_hashes, index)
    proof = {"total": str(len(txs)), "index": str(index), "leaf_hash": encode_base64(leaf),
             "aunts": [base64.b64encode(a).decode() for a in aunts]}
    return {"root_hash": encode_hex(compute_data_hash(txs)), "data": encode_base64(txs[index]), "proof": proof}
