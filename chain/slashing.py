"""Slashing, as the Cosmos SDK's x/slashing (and x/evidence): what a validator's faults cost.

Liveness: every block, each vote of the decided last commit by a validator staking knows (and has
not jailed) moves that validator's signing window one block on: a window of `signed_blocks_window`
bits, set where it was absent. Once the validator is past its first window (start_height + window)
and has missed more than window − round(min_signed_per_window × window) of it, it loses
`slash_fraction_downtime` of its tokens, is jailed until `downtime_jail_duration` from now, and its
window starts over.

Double signing: misbehavior CometBFT reports (a duplicate vote, or a light client attack) by a
validator that is not unbonded and not yet tombstoned costs `slash_fraction_double_sign` of its
current tokens, jails it and tombstones it: it can never be unjailed.

Slashed tokens are burnt (chain.bank.process_burn): the supply falls by as much. A jailed validator
leaves the set at the end of the block (chain.validators); MsgUnjail brings it back once its jail
time is over, if its own delegation still covers its min_self_delegation.

Store layout (`encode_key`; ints are 32-byte big-endian):
    0x01                                -> Params
    0x10 | consensus address            -> ValidatorSigningInfo
    0x11 | consensus address | index    -> present where the window's block `index` was missed
"""

from chain import crypto, staking
from chain.errors import GenesisError, InvalidAddressError, NotFoundError, TxError
from chain.proto.cosmos.slashing.v1beta1 import genesis_pb2, query_pb2, slashing_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.types import validator_pb2
from chain.sdktypes import (
    ONE, compute_chop, compute_nanoseconds, compute_timestamp, decode_sdk_genesis, encode_sdk_genesis, parse_dec,
)
from chain.state import (
    MessageHandler, decode_key as decode_key_of, encode_key, get_message, get_messages, get_page, get_shared_message,
    iterate_prefix, set_message,
)
from chain.tx import compute_type_url
from chain.validators import CONSENSUS_PREFIX, UNBONDED, compute_consensus_address, format_consensus, parse_operator

STORE = "slashing"
CODESPACE = "slashing"
ABSENT = validator_pb2.BLOCK_ID_FLAG_ABSENT
EQUIVOCATIONS = (abci.DUPLICATE_VOTE, abci.LIGHT_CLIENT_ATTACK)
DOUBLE_SIGN_JAIL_END_NS = 253402300799 * 10**9  # 9999-12-31T23:59:59Z: for ever
MARK = b"\x01"

PARAMS = 0x01
SIGNING_INFO = 0x10
MISSED = 0x11
KEYS = {PARAMS: (), SIGNING_INFO: (bytes,), MISSED: (bytes, int)}

DEFAULT_PARAMS = slashing_pb2.Params(
    signed_blocks_window=100,
    min_signed_per_window=b"500000000000000000",
    downtime_jail_duration={"seconds": 600},
    slash_fraction_double_sign=b"50000000000000000",
    slash_fraction_downtime=b"10000000000000000",
)
FRACTIONS = ("min_signed_per_window", "slash_fraction_double_sign", "slash_fraction_downtime")


class SlashingError(TxError):
    codespace = CODESPACE


class NoValidatorError(SlashingError):
    code = 2


class ValidatorStillJailedError(SlashingError):
    code = 4


class ValidatorNotJailedError(SlashingError):
    code = 5


class MissingSelfDelegationError(SlashingError):
    code = 6


class SelfDelegationTooLowError(SlashingError):
    code = 7


class NoSigningInfoError(SlashingError):
    code = 8


class ValidatorTombstonedError(SlashingError):
    code = 9


class InvalidParams(GenesisError):
    pass


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


def get_params(state) -> slashing_pb2.Params:
    """The params (a shared, read-only message)."""
    return get_shared_message(state, slashing_pb2.Params, state_key(PARAMS))


def compute_fraction(params: slashing_pb2.Params, name: str) -> int:
    return parse_dec(getattr(params, name).decode(), name, ValueError)


def check_params(params: slashing_pb2.Params) -> None:
    if params.signed_blocks_window < 1 or compute_nanoseconds(params.downtime_jail_duration) < 0:
        raise InvalidParams("slashing params: signed_blocks_window must be positive, downtime_jail_duration not negative")
    for name in FRACTIONS:
        try:
            fraction = parse_dec(getattr(params, name).decode(errors="replace"), name, InvalidParams)
        except InvalidParams as error:
            raise InvalidParams(f"slashing params: {error}") from None
        if not 0 <= fraction <= ONE:
            raise InvalidParams(f"slashing params: {name} must be in [0, 1]")


def compute_max_missed(params: slashing_pb2.Params) -> int:
    """The blocks of a window a validator may miss (the SDK's window − MinSignedPerWindow)."""
    window = params.signed_blocks_window
    return window - compute_chop(compute_fraction(params, "min_signed_per_window") * window)


def get_signing_info(state, address: bytes) -> slashing_pb2.ValidatorSigningInfo | None:
    return get_message(state, slashing_pb2.ValidatorSigningInfo, state_key(SIGNING_INFO, address))


def compute_new_signing_info(ctx, address: bytes) -> slashing_pb2.ValidatorSigningInfo:
    return slashing_pb2.ValidatorSigningInfo(address=format_consensus(address), start_height=ctx.height)


# --- liveness ------------------------------------------------------------------------------

def process_signature(state, ctx, params, vote: abci.VoteInfo) -> None:
    """One vote of the last commit: the validator's window moves on; too many misses slash and jail it."""
    address = vote.validator.address
    operator = staking.get_operator(state, address)
    if operator is None or staking.get_validator(state, operator).jailed:
        return
    info = get_signing_info(state, address) or compute_new_signing_info(ctx, address)
    bit = state_key(MISSED, address, info.index_offset % params.signed_blocks_window)
    info.index_offset += 1
    missed, previous = vote.block_id_flag == ABSENT, state.get(bit) is not None
    if missed and not previous:
        state.set(bit, MARK)
        info.missed_blocks_counter += 1
    elif previous and not missed:
        state.delete(bit)
        info.missed_blocks_counter -= 1
    if missed:
        ctx.emit("liveness", ("address", info.address), ("missed_blocks", str(info.missed_blocks_counter)),
                 ("height", str(ctx.height)))
    if ctx.height > info.start_height + params.signed_blocks_window and \
            info.missed_blocks_counter > compute_max_missed(params):
        burned = staking.process_slash(state, ctx, operator, compute_fraction(params, "slash_fraction_downtime"))
        staking.process_jail(state, operator)
        ctx.emit("slash", ("address", info.address), ("power", str(vote.validator.power)),
                 ("reason", "missing_signature"), ("jailed", info.address), ("burned_coins", f"{burned}ujoule"))
        info.jailed_until.CopyFrom(compute_timestamp(ctx.time_ns + compute_nanoseconds(params.downtime_jail_duration)))
        info.missed_blocks_counter = info.index_offset = 0
        for key, _ in list(iterate_prefix(state, state_key(MISSED, address))):
            state.delete(key)
    set_message(state, state_key(SIGNING_INFO, address), info)


# --- double signing ------------------------------------------------------------------------

def process_equivocation(state, ctx, params, misbehavior: abci.Misbehavior) -> None:
    """Slashes, jails and tombstones a validator that signed twice; evidence against a validator
    unbonded, unknown or already tombstoned changes nothing."""
    address = misbehavior.validator.address
    operator = staking.get_operator(state, address)
    validator = None if operator is None else staking.get_validator(state, operator)
    if validator is None or validator.status == UNBONDED:
        return
    info = get_signing_info(state, address) or compute_new_signing_info(ctx, address)
    if info.tombstoned:
        return
    burned = staking.process_slash(state, ctx, operator, compute_fraction(params, "slash_fraction_double_sign"))
    attributes = [("address", info.address), ("power", str(misbehavior.validator.power)), ("reason", "double_sign")]
    if not validator.jailed:
        staking.process_jail(state, operator)
        attributes.append(("jailed", info.address))
    ctx.emit("slash", *attributes, ("burned_coins", f"{burned}ujoule"))
    info.jailed_until.CopyFrom(compute_timestamp(DOUBLE_SIGN_JAIL_END_NS))
    info.tombstoned = True
    set_message(state, state_key(SIGNING_INFO, address), info)


def begin_block(state, ctx) -> None:
    """The last commit's votes, then the block's evidence (the SDK's slashing, then evidence, BeginBlocker)."""
    params = get_params(state)
    for vote in ctx.votes:
        process_signature(state, ctx, params, vote)
    for misbehavior in ctx.misbehavior:
        if misbehavior.type in EQUIVOCATIONS:
            process_equivocation(state, ctx, params, misbehavior)


# --- MsgUnjail -----------------------------------------------------------------------------

def signer_unjail(msg: tx_pb2.MsgUnjail) -> bytes:
    return parse_operator(msg.validator_addr)


def check_stateless_unjail(msg: tx_pb2.MsgUnjail) -> None:
    parse_operator(msg.validator_addr)


def check_and_execute_unjail(state, ctx, msg: tx_pb2.MsgUnjail) -> tx_pb2.MsgUnjailResponse:
    operator = parse_operator(msg.validator_addr)
    validator = staking.get_validator(state, operator)
    if validator is None:
        raise NoValidatorError(f"address {msg.validator_addr} is not associated with any known validator")
    self_bond = staking.get_self_bond(state, operator)
    if self_bond is None:
        raise MissingSelfDelegationError("validator has no self-delegation; cannot be unjailed")
    if self_bond < int(validator.min_self_delegation):
        raise SelfDelegationTooLowError(f"validator's self delegation {self_bond} is less than its minimum "
                                        f"{validator.min_self_delegation}; cannot be unjailed")
    if not validator.jailed:
        raise ValidatorNotJailedError("validator not jailed; cannot be unjailed")
    address = compute_consensus_address(validator)
    info = get_signing_info(state, address)
    if info is None:
        raise NoSigningInfoError(f"no validator signing info found for {format_consensus(address)}")
    if info.tombstoned:
        raise ValidatorTombstonedError("validator already tombstoned; cannot be unjailed")
    if ctx.time_ns < compute_nanoseconds(info.jailed_until):
        raise ValidatorStillJailedError(f"validator still jailed until {info.jailed_until.ToJsonString()}; "
                                        "cannot be unjailed")
    staking.process_unjail(state, operator)
    return tx_pb2.MsgUnjailResponse()


MESSAGES = {
    compute_type_url(tx_pb2.MsgUnjail): MessageHandler(
        tx_pb2.MsgUnjail, signer_unjail, check_stateless_unjail, check_and_execute_unjail),
}


# --- genesis -------------------------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    genesis = decode_sdk_genesis(section, genesis_pb2.GenesisState, DEFAULT_PARAMS, STORE)
    check_params(genesis.params)
    set_message(state, state_key(PARAMS), genesis.params)
    try:
        for entry in genesis.signing_infos:
            address = crypto.decode_address(entry.address, CONSENSUS_PREFIX)
            set_message(state, state_key(SIGNING_INFO, address), entry.validator_signing_info)
        for entry in genesis.missed_blocks:
            address = crypto.decode_address(entry.address, CONSENSUS_PREFIX)
            for block in entry.missed_blocks:
                if block.missed:
                    state.set(state_key(MISSED, address, block.index), MARK)
    except crypto.InvalidAddress as error:
        raise GenesisError(f"slashing genesis: {error}") from None


def export_genesis(state) -> dict:
    infos = get_messages(state, slashing_pb2.ValidatorSigningInfo, state_key(SIGNING_INFO))
    missed: dict[bytes, list] = {}
    for key, _ in iterate_prefix(state, state_key(MISSED)):
        address, index = decode_key(key)
        missed.setdefault(address, []).append(genesis_pb2.MissedBlock(index=index, missed=True))
    genesis = genesis_pb2.GenesisState(
        params=get_params(state),
        signing_infos=[genesis_pb2.SigningInfo(address=info.address, validator_signing_info=info) for info in infos],
        missed_blocks=[genesis_pb2.ValidatorMissedBlocks(address=format_consensus(address), missed_blocks=blocks)
                       for address, blocks in missed.items()],
    )
    return encode_sdk_genesis(genesis)


# --- queries (gRPC over ABCI) --------------------------------------------------------------

def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params=get_params(state))


def query_signing_info(state, request: query_pb2.QuerySigningInfoRequest) -> query_pb2.QuerySigningInfoResponse:
    try:
        address = crypto.decode_address(request.cons_address, CONSENSUS_PREFIX)
    except crypto.InvalidAddress as error:
        raise InvalidAddressError(f"invalid consensus address: {error}") from None
    info = get_signing_info(state, address)
    if info is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = SigningInfo not found for validator {request.cons_address}")
    return query_pb2.QuerySigningInfoResponse(val_signing_info=info)


def query_signing_infos(state, request: query_pb2.QuerySigningInfosRequest) -> query_pb2.QuerySigningInfosResponse:
    rows, next_key = get_page(state, state_key(SIGNING_INFO), request.pagination)
    infos = [slashing_pb2.ValidatorSigningInfo.FromString(raw) for _, raw in rows]
    return query_pb2.QuerySigningInfosResponse(info=infos, pagination={"next_key": next_key})


QUERIES = {
    "/cosmos.slashing.v1beta1.Query/Params": (query_pb2.QueryParamsRequest, query_params),
    "/cosmos.slashing.v1beta1.Query/SigningInfo": (query_pb2.QuerySigningInfoRequest, query_signing_info),
    "/cosmos.slashing.v1beta1.Query/SigningInfos": (query_pb2.QuerySigningInfosRequest, query_signing_infos),
}
