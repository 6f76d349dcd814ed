"""Staking's validators: their records, the power index, the two pools, and the consensus validator set.

Part of the staking component (it reads and writes the staking store; `chain.staking` is the module of
the registry). A validator's `tokens` are the ujoule bonded to it; its `delegator_shares` (a LegacyDec)
are what its delegators hold, so a slash lowers the tokens and with them the worth of every share.
Tokens sit in one of two module accounts: the bonded pool holds the tokens of BONDED validators, the
not-bonded pool those of UNBONDING and UNBONDED validators and of unbonding delegations. Every change
of status moves the tokens between the pools, so their balances always equal what the records hold.

The set, every end_block (`process_validator_set_updates`): the top `max_validators` validators by
power (tokens / 10^6, ties to the lower operator address) that are not jailed and have power are
BONDED; a validator that leaves is UNBONDING, and UNBONDED once `unbonding_time` has passed. The
changes against the last block's set are the updates FinalizeBlock returns (power 0 removes a
validator). Staking drives the consensus set once genesis has validators (`is_managing_validator_set`);
without them the validators of CometBFT's genesis stand and no update is ever sent.

Store layout of the staking store (`encode_key`; ints are 32-byte big-endian, times in ns):
    0x01                                    -> Params
    0x02                                    -> present when staking's validators are the consensus set
    0x03                                    -> the last validator set's total power
    0x04                                    -> next unbonding id
    0x10 | operator                         -> Validator
    0x11 | consensus address                -> operator
    0x12 | 2^256-1-power | operator         -> the power index: validators not jailed, strongest first
    0x13 | operator                         -> its power in the last validator set
    0x14 | unbonding time | operator        -> the validator's unbonding completes then
    0x20 | delegator | operator             -> Delegation
    0x21 | delegator | operator             -> UnbondingDelegation
    0x22 | completion time | delegator | operator              -> entries of it complete then
    0x23 | delegator | source | destination -> Redelegation
    0x24 | delegator | destination | source -> the redelegation, by destination
    0x25 | completion time | delegator | source | destination -> entries of it complete then
    0x30 | height                           -> HistoricalInfo
"""

from chain import bank, crypto
from chain.coins import UINT256_MAX
from chain.errors import InvalidAddressError
from chain.proto.cosmos.crypto.ed25519 import keys_pb2
from chain.proto.cosmos.staking.v1beta1 import staking_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.crypto import keys_pb2 as tendermint_keys
from chain.proto.tendermint.types import types_pb2
from chain.sdktypes import ONE, compute_nanoseconds, compute_quo, compute_timestamp, parse_dec
from chain.state import (
    decode_key as decode_key_of, decode_number, encode_key, get_message, get_shared_message, iterate_prefix, public,
    set_message, set_number,
)
from ibc import tendermint

STORE = "staking"
BONDED_POOL = bank.compute_module_address("bonded_tokens_pool")
NOT_BONDED_POOL = bank.compute_module_address("not_bonded_tokens_pool")
POWER_REDUCTION = 10**6
OPERATOR_PREFIX = crypto.BECH32_PREFIX + "valoper"
CONSENSUS_PREFIX = crypto.BECH32_PREFIX + "valcons"
ED25519_PUBKEY_URL = "/cosmos.crypto.ed25519.PubKey"
BONDED = staking_pb2.BOND_STATUS_BONDED
UNBONDING = staking_pb2.BOND_STATUS_UNBONDING
UNBONDED = staking_pb2.BOND_STATUS_UNBONDED
MARK = b"\x01"

PARAMS = 0x01
MANAGED = 0x02
LAST_TOTAL_POWER = 0x03
NEXT_UNBONDING_ID = 0x04
VALIDATOR = 0x10
BY_CONSENSUS = 0x11
BY_POWER = 0x12
LAST_POWER = 0x13
VALIDATOR_QUEUE = 0x14
DELEGATION = 0x20
UNBONDING_DELEGATION = 0x21
UNBONDING_QUEUE = 0x22
REDELEGATION = 0x23
REDELEGATION_BY_DESTINATION = 0x24
REDELEGATION_QUEUE = 0x25
HISTORICAL_INFO = 0x30
KEYS = {
    PARAMS: (), MANAGED: (), LAST_TOTAL_POWER: (), NEXT_UNBONDING_ID: (), VALIDATOR: (bytes,), BY_CONSENSUS: (bytes,),
    BY_POWER: (int, bytes), LAST_POWER: (bytes,), VALIDATOR_QUEUE: (int, bytes), DELEGATION: (bytes, bytes),
    UNBONDING_DELEGATION: (bytes, bytes), UNBONDING_QUEUE: (int, bytes, bytes), REDELEGATION: (bytes, bytes, bytes),
    REDELEGATION_BY_DESTINATION: (bytes, bytes, bytes), REDELEGATION_QUEUE: (int, bytes, bytes, bytes),
    HISTORICAL_INFO: (int,),
}


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_params(state) -> staking_pb2.Params:
    """The params (a shared, read-only message)."""
    return get_shared_message(state, staking_pb2.Params, state_key(PARAMS))


@public(STORE)
def is_managing_validator_set(state) -> bool:
    return state.get(state_key(MANAGED)) is not None


def process_manage_validator_set(state) -> None:
    state.set(state_key(MANAGED), MARK)


# --- addresses and keys --------------------------------------------------------------------

def format_operator(operator: bytes) -> str:
    return crypto.encode_address(operator, OPERATOR_PREFIX)


def parse_operator(text: str) -> bytes:
    try:
        return crypto.decode_address(text, OPERATOR_PREFIX)
    except crypto.InvalidAddress as error:
        raise InvalidAddressError(f"invalid validator address: {error}") from None


def format_consensus(address: bytes) -> str:
    return crypto.encode_address(address, CONSENSUS_PREFIX)


def compute_consensus_key(validator: staking_pb2.Validator) -> bytes:
    return keys_pb2.PubKey.FromString(validator.consensus_pubkey.value).key


def compute_consensus_address(validator: staking_pb2.Validator) -> bytes:
    return tendermint.compute_consensus_address(compute_consensus_key(validator))


def compute_validator_update(validator: staking_pb2.Validator, power: int) -> abci.ValidatorUpdate:
    return abci.ValidatorUpdate(pub_key=tendermint_keys.PublicKey(ed25519=compute_consensus_key(validator)), power=power)


# --- records, the power index and the pools ------------------------------------------------

def compute_power(validator: staking_pb2.Validator) -> int:
    return int(validator.tokens) // POWER_REDUCTION


def compute_pool(status: int) -> bytes:
    """The module account that holds the tokens of a validator of this status."""
    return BONDED_POOL if status == BONDED else NOT_BONDED_POOL


def compute_power_key(operator: bytes, validator: staking_pb2.Validator) -> bytes | None:
    return None if validator.jailed else state_key(BY_POWER, UINT256_MAX - compute_power(validator), operator)


def compute_tokens(validator: staking_pb2.Validator, shares: int) -> int:
    """The ujoule that `shares` of the validator are worth, truncated (the SDK's TokensFromShares)."""
    return compute_quo(shares * int(validator.tokens), parse_dec(validator.delegator_shares, "shares", ValueError)) // ONE


@public(STORE)
def get_validator(state, operator: bytes) -> staking_pb2.Validator | None:
    return get_message(state, staking_pb2.Validator, state_key(VALIDATOR, operator))


def get_delegation(state, delegator: bytes, operator: bytes) -> staking_pb2.Delegation | None:
    return get_message(state, staking_pb2.Delegation, state_key(DELEGATION, delegator, operator))


def compute_shares(delegation: staking_pb2.Delegation | None) -> int:
    return 0 if delegation is None else parse_dec(delegation.shares, "shares", ValueError)


def get_unbonding_delegation(state, delegator: bytes, operator: bytes) -> staking_pb2.UnbondingDelegation | None:
    return get_message(state, staking_pb2.UnbondingDelegation, state_key(UNBONDING_DELEGATION, delegator, operator))


@public(STORE)
def get_operator(state, consensus_address: bytes) -> bytes | None:
    """The operator of the validator with this consensus address, None when there is none."""
    return state.get(state_key(BY_CONSENSUS, consensus_address))


@public(STORE)
def get_consensus_keys(state) -> dict[bytes, bytes]:
    """Consensus address -> ed25519 public key of every validator."""
    return {decode_key(key)[0]: compute_consensus_key(get_validator(state, operator))
            for key, operator in iterate_prefix(state, state_key(BY_CONSENSUS))}


def set_validator(state, operator: bytes, validator: staking_pb2.Validator) -> None:
    """Writes the record, its consensus address and its entry of the power index."""
    previous = get_validator(state, operator)
    old_key = None if previous is None else compute_power_key(operator, previous)
    new_key = compute_power_key(operator, validator)
    if old_key != new_key:
        if old_key is not None:
            state.delete(old_key)
        if new_key is not None:
            state.set(new_key, MARK)
    if previous is None:
        state.set(state_key(BY_CONSENSUS, compute_consensus_address(validator)), operator)
    set_message(state, state_key(VALIDATOR, operator), validator)


def process_remove_validator(state, operator: bytes, validator: staking_pb2.Validator) -> None:
    """An unbonded validator with no delegation left is forgotten."""
    power_key = compute_power_key(operator, validator)
    if power_key is not None:
        state.delete(power_key)
    state.delete(state_key(BY_CONSENSUS, compute_consensus_address(validator)))
    state.delete(state_key(VALIDATOR, operator))


def process_pool_move(state, ctx, source_status: int, status: int, amount: int) -> None:
    """Tokens of a validator of `source_status` now back one of `status`: they change pools if needed."""
    source, destination = compute_pool(source_status), compute_pool(status)
    if source != destination:
        bank.process_payment(state, ctx, source, destination, amount)


@public(STORE)
def process_jail(state, operator: bytes) -> None:
    """Out of the power index: the validator leaves the set at the end of the block."""
    validator = get_validator(state, operator)
    validator.jailed = True
    set_validator(state, operator, validator)


@public(STORE)
def process_unjail(state, operator: bytes) -> None:
    validator = get_validator(state, operator)
    validator.jailed = False
    set_validator(state, operator, validator)


@public(STORE)
def process_slash(state, ctx, operator: bytes, fraction: int) -> int:
    """Burns `fraction` (a LegacyDec) of the validator's tokens from their pool; returns what burned.
    Its shares stay, so each is worth less."""
    validator = get_validator(state, operator)
    tokens = int(validator.tokens)
    burned = min(tokens * fraction // ONE, tokens)
    validator.tokens = str(tokens - burned)
    set_validator(state, operator, validator)
    bank.process_burn(state, ctx, compute_pool(validator.status), burned)
    return burned


# --- the validator set ---------------------------------------------------------------------

def get_last_powers(state) -> dict[bytes, int]:
    return {decode_key(key)[0]: decode_number(raw) for key, raw in iterate_prefix(state, state_key(LAST_POWER))}


def get_validator_set(state) -> list[abci.ValidatorUpdate]:
    """The last validator set, as updates (ResponseInitChain.validators), by operator address."""
    return [compute_validator_update(get_validator(state, operator), power)
            for operator, power in get_last_powers(state).items()]


def process_bond(state, operator: bytes, validator: staking_pb2.Validator) -> None:
    if validator.status == UNBONDING:
        state.delete(state_key(VALIDATOR_QUEUE, compute_nanoseconds(validator.unbonding_time), operator))
    validator.status = BONDED
    set_validator(state, operator, validator)


def process_begin_unbonding(state, ctx, params, operator: bytes, validator: staking_pb2.Validator) -> None:
    completion = ctx.time_ns + compute_nanoseconds(params.unbonding_time)
    validator.status = UNBONDING
    validator.unbonding_height = ctx.height
    validator.unbonding_time.CopyFrom(compute_timestamp(completion))
    set_validator(state, operator, validator)
    state.set(state_key(VALIDATOR_QUEUE, completion, operator), MARK)


def process_validator_set_updates(state, ctx) -> list[abci.ValidatorUpdate]:
    """Bonds the strongest `max_validators`, starts unbonding those that left, moves their tokens
    between the pools; returns the changes against the last set (the SDK's
    ApplyAndReturnValidatorSetUpdates)."""
    params = get_params(state)
    last = get_last_powers(state)
    updates, total, to_bonded, to_not_bonded = [], 0, 0, 0
    for count, (key, _) in enumerate(iterate_prefix(state, state_key(BY_POWER))):
        inverse_power, operator = decode_key(key)
        power = UINT256_MAX - inverse_power
        if count == params.max_validators or power == 0:
            break
        validator = get_validator(state, operator)
        if validator.status != BONDED:
            to_bonded += int(validator.tokens)
            process_bond(state, operator, validator)
        if last.pop(operator, None) != power:
            updates.append(compute_validator_update(validator, power))
            set_number(state, state_key(LAST_POWER, operator), power)
        total += power
    for operator in sorted(last):
        validator = get_validator(state, operator)
        to_not_bonded += int(validator.tokens)
        process_begin_unbonding(state, ctx, params, operator, validator)
        state.delete(state_key(LAST_POWER, operator))
        updates.append(compute_validator_update(validator, 0))
    if to_bonded > to_not_bonded:
        bank.process_payment(state, ctx, NOT_BONDED_POOL, BONDED_POOL, to_bonded - to_not_bonded)
    else:
        bank.process_payment(state, ctx, BONDED_POOL, NOT_BONDED_POOL, to_not_bonded - to_bonded)
    if updates:
        set_number(state, state_key(LAST_TOTAL_POWER), total)
    return updates


def process_mature_validators(state, ctx) -> None:
    """Validators whose unbonding time has come are UNBONDED; those left without shares are forgotten."""
    due = state_key(VALIDATOR_QUEUE), state_key(VALIDATOR_QUEUE, ctx.time_ns + 1)
    for key, _ in list(state.iterate(*due)):
        _, operator = decode_key(key)
        state.delete(key)
        validator = get_validator(state, operator)
        validator.status = UNBONDED
        if parse_dec(validator.delegator_shares, "shares", ValueError):
            set_validator(state, operator, validator)
        else:
            process_remove_validator(state, operator, validator)


# --- historical info -----------------------------------------------------------------------

def get_bonded_validators(state) -> list[staking_pb2.Validator]:
    return [get_validator(state, operator) for operator in get_last_powers(state)]


def process_historical_info(state, ctx) -> None:
    """Keeps this block's header and validator set for `historical_entries` blocks (IBC light clients
    of this chain check headers against them)."""
    entries = get_params(state).historical_entries
    if not entries or not is_managing_validator_set(state):
        return
    header = types_pb2.Header(chain_id=ctx.chain_id, height=ctx.height, time=compute_timestamp(ctx.time_ns),
                              next_validators_hash=ctx.next_validators_hash, proposer_address=ctx.proposer_address)
    info = staking_pb2.HistoricalInfo(header=header, valset=get_bonded_validators(state))
    set_message(state, state_key(HISTORICAL_INFO, ctx.height), info)
    if ctx.height > entries:
        state.delete(state_key(HISTORICAL_INFO, ctx.height - entries))


@public(STORE)
def get_historical_info(state, height: int) -> staking_pb2.HistoricalInfo | None:
    return get_message(state, staking_pb2.HistoricalInfo, state_key(HISTORICAL_INFO, height))
