"""Staking, as the Cosmos SDK's x/staking: JOULE bonded to validators elects the consensus set.

Validators, the power index, the pools and the validator set are in `chain.validators` (its
docstring has the store layout), the queries in `chain.staking_queries`; this module has the
delegations, the unbonding and redelegation queues, the messages, the block hooks and genesis.

A delegation holds shares of a validator. Delegating `amount` issues amount × shares / tokens of them
(amount itself to a validator with none); undelegating takes the shares the amount is worth and starts
an unbonding entry that pays the tokens back after `unbonding_time` of block time. A redelegation
moves the tokens to another validator at once; its entry only stops a second hop from the destination
until it completes. Tokens leaving a bonded validator move from the bonded to the not-bonded pool.

Block hooks: begin_block keeps the historical info; end_block applies the validator set (the updates
FinalizeBlock returns), then completes the validators', the unbondings' and the redelegations' terms
that have come (the order of the SDK's EndBlocker).

Genesis: params and, from an export, validators, delegations, unbonding delegations, redelegations and
the last set, whose pools must hold what they say; then (chain.app) the `genutil` section's gen_txs,
signed txs of one MsgCreateValidator each, run through the ante handler and the message as any tx;
the set they elect is InitChain's. Decimals are written as in SDK genesis files ("0.05").
"""

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from chain import bank, crypto
from chain.coins import DENOM, parse_uint
from chain.errors import GenesisError, InvalidPubKeyError, InvalidRequestError, TxDecodeError, TxError
from chain.proto.cosmos.crypto.ed25519 import keys_pb2
from chain.proto.cosmos.staking.v1beta1 import genesis_pb2, staking_pb2, tx_pb2
from chain.proto.cosmos.tx.v1beta1 import tx_pb2 as cosmos_tx
from chain.sdktypes import (
    ONE, DecimalError, compute_nanoseconds, compute_rfc3339, compute_timestamp, decode_sdk_genesis, decode_sdk_json,
    encode_sdk_genesis, format_dec, format_dec_text, parse_dec,
)
from chain.staking_queries import QUERIES
from chain.state import MessageHandler, get_message, get_messages, iterate_prefix, public, set_message, set_number
from chain.tx import compute_type_url, pack_any, parse_address
from chain.validators import (
    BONDED, BONDED_POOL, DELEGATION, ED25519_PUBKEY_URL, KEYS, LAST_POWER, LAST_TOTAL_POWER, MARK, NEXT_UNBONDING_ID,
    NOT_BONDED_POOL, PARAMS, POWER_REDUCTION, REDELEGATION, REDELEGATION_BY_DESTINATION, REDELEGATION_QUEUE, STORE,
    UNBONDED, UNBONDING, UNBONDING_DELEGATION, UNBONDING_QUEUE, VALIDATOR, VALIDATOR_QUEUE, compute_consensus_address,
    compute_pool, compute_shares, compute_tokens, decode_key, format_operator, get_consensus_keys, get_delegation,
    get_last_powers, get_operator, get_params, get_unbonding_delegation, get_validator, get_validator_set,
    is_managing_validator_set, parse_operator, process_historical_info, process_jail, process_manage_validator_set,
    process_mature_validators, process_pool_move, process_remove_validator, process_slash, process_unjail,
    process_validator_set_updates, set_validator, state_key,
)

__all__ = ("STORE", "KEYS", "QUERIES", "state_key", "decode_key", "get_validator", "get_operator", "get_consensus_keys",
           "is_managing_validator_set", "process_jail", "process_unjail", "process_slash")

CODESPACE = "staking"
ED25519_KEY_LENGTH = 32
COMMISSION_UPDATE_NS = 24 * 3600 * 10**9
MAX_POWER = (2**63 - 1) // 8  # CometBFT's MaxTotalVotingPower
DO_NOT_MODIFY = "[do-not-modify]"
DESCRIPTION_LIMITS = {"moniker": 70, "identity": 3000, "website": 140, "security_contact": 140, "details": 280}
MSG_CREATE_VALIDATOR_URL = compute_type_url(tx_pb2.MsgCreateValidator)

DEFAULT_PARAMS = staking_pb2.Params(
    unbonding_time={"seconds": 21 * 24 * 3600},
    max_validators=100,
    max_entries=7,
    historical_entries=100,
    bond_denom=DENOM,
    min_commission_rate="0",
)


# --- errors ----------------------------------------------------------------------------------

class StakingError(TxError):
    codespace = CODESPACE


class NoValidatorFoundError(StakingError):
    code = 3


class ValidatorOwnerExistsError(StakingError):
    code = 4


class ValidatorPubKeyExistsError(StakingError):
    code = 5


class PubKeyTypeNotSupportedError(StakingError):
    code = 6


class CommissionNegativeError(StakingError):
    code = 9


class CommissionHugeError(StakingError):
    code = 10


class CommissionAboveMaxRateError(StakingError):
    code = 11


class CommissionUpdateTimeError(StakingError):
    code = 12


class CommissionChangeRateNegativeError(StakingError):
    code = 13


class CommissionChangeRateAboveMaxRateError(StakingError):
    code = 14


class CommissionAboveMaxChangeError(StakingError):
    code = 15


class SelfDelegationBelowMinimumError(StakingError):
    code = 16


class MinSelfDelegationDecreasedError(StakingError):
    code = 17


class NoDelegationError(StakingError):
    code = 19


class InsufficientSharesError(StakingError):
    code = 22


class MaxUnbondingEntriesError(StakingError):
    code = 27


class SelfRedelegationError(StakingError):
    code = 29


class TinyRedelegationError(StakingError):
    code = 30


class BadRedelegationDestinationError(StakingError):
    code = 31


class TransitiveRedelegationError(StakingError):
    code = 32


class MaxRedelegationEntriesError(StakingError):
    code = 33


class DelegatorShareExRateInvalidError(StakingError):
    code = 34


class EmptyValidatorPubKeyError(StakingError):
    code = 39


class CommissionBelowMinimumError(StakingError):
    code = 40


class InvalidParams(GenesisError):
    pass


class AccountingMismatch(GenesisError):
    pass


# --- params and amounts ----------------------------------------------------------------------

def check_params(params: staking_pb2.Params) -> None:
    if compute_nanoseconds(params.unbonding_time) <= 0 or params.max_validators < 1 or params.max_entries < 1:
        raise InvalidParams("staking params: unbonding_time, max_validators and max_entries must be positive")
    if params.bond_denom != DENOM:
        raise InvalidParams(f"staking params: the bond denom is {DENOM}")
    if not 0 <= parse_dec(params.min_commission_rate, "min_commission_rate", InvalidParams) <= ONE:
        raise InvalidParams("staking params: min_commission_rate must be in [0, 1]")


def compute_amount(coin, what: str) -> int:
    amount = parse_uint(coin.amount, what, InvalidRequestError)
    if amount == 0:
        raise InvalidRequestError(f"invalid {what}: must be positive")
    return amount


def check_denom(params, coin) -> None:
    if coin.denom != params.bond_denom:
        raise InvalidRequestError(f"invalid coin denomination: got {coin.denom}, expected {params.bond_denom}")


def compute_decimal(text: str, what: str) -> int:
    """A LegacyDec field of a message; empty is zero, as the SDK reads it."""
    return parse_dec(text or "0", what, TxDecodeError)


def compute_coin_text(amount: int) -> str:
    return f"{amount}{DENOM}"


# --- descriptions and commissions ------------------------------------------------------------

def check_description(description: staking_pb2.Description) -> None:
    if not any(getattr(description, name) for name in DESCRIPTION_LIMITS):
        raise InvalidRequestError("empty description")
    for name, limit in DESCRIPTION_LIMITS.items():
        length = len(getattr(description, name))
        if length > limit and getattr(description, name) != DO_NOT_MODIFY:
            raise InvalidRequestError(f"invalid {name} length; got: {length}, max: {limit}")


def compute_description(current: staking_pb2.Description, update: staking_pb2.Description) -> staking_pb2.Description:
    """`update` over `current`, keeping the fields it marks "[do-not-modify]"."""
    return staking_pb2.Description(**{
        name: getattr(current if getattr(update, name) == DO_NOT_MODIFY else update, name) for name in DESCRIPTION_LIMITS
    })


def check_commission_rates(rate: int, max_rate: int, max_change_rate: int) -> None:
    if max_rate < 0 or rate < 0:
        raise CommissionNegativeError("commission must be positive")
    if max_rate > ONE:
        raise CommissionHugeError("commission cannot be more than 100%")
    if rate > max_rate:
        raise CommissionAboveMaxRateError("commission cannot be more than the max rate")
    if max_change_rate < 0:
        raise CommissionChangeRateNegativeError("commission change rate must be positive")
    if max_change_rate > max_rate:
        raise CommissionChangeRateAboveMaxRateError("commission change rate cannot be more than the max rate")


def check_minimum_commission(params, rate: int) -> None:
    minimum = parse_dec(params.min_commission_rate, "min_commission_rate", ValueError)
    if rate < minimum:
        raise CommissionBelowMinimumError(f"commission cannot be less than min rate {format_dec_text(minimum)}")


def check_new_rate(commission: staking_pb2.Commission, rate: int, time_ns: int) -> None:
    """A commission may change once a day, up to its max rate, rising by at most its max change rate."""
    rates = commission.commission_rates
    if time_ns - compute_nanoseconds(commission.update_time) < COMMISSION_UPDATE_NS:
        raise CommissionUpdateTimeError("commission cannot be changed more than once in 24h")
    if rate > parse_dec(rates.max_rate, "max_rate", ValueError):
        raise CommissionAboveMaxRateError("commission cannot be more than the max rate")
    if rate - parse_dec(rates.rate, "rate", ValueError) > parse_dec(rates.max_change_rate, "max_change_rate", ValueError):
        raise CommissionAboveMaxChangeError("commission cannot be changed more than max change rate")


def compute_consensus_key(any_key) -> bytes:
    """The ed25519 key of a MsgCreateValidator's pubkey."""
    if not any_key.type_url and not any_key.value:
        raise EmptyValidatorPubKeyError("empty validator public key")
    if any_key.type_url != ED25519_PUBKEY_URL:
        raise PubKeyTypeNotSupportedError(f"validator pubkey type {any_key.type_url!r} is not supported; "
                                          f"expected {ED25519_PUBKEY_URL}")
    try:
        key = keys_pb2.PubKey.FromString(any_key.value).key
    except DecodeError as error:
        raise TxDecodeError(f"tx parse error: invalid validator pubkey: {error}") from None
    if len(key) != ED25519_KEY_LENGTH:
        raise InvalidPubKeyError(f"invalid pubkey: ed25519 keys are {ED25519_KEY_LENGTH} bytes")
    return key


# --- delegations -----------------------------------------------------------------------------

@public(STORE)
def get_self_bond(state, operator: bytes) -> int | None:
    """What the operator's own delegation is worth; None when it has none."""
    delegation = get_delegation(state, operator, operator)
    return None if delegation is None else compute_tokens(get_validator(state, operator), compute_shares(delegation))


def process_delegate(state, ctx, delegator: bytes, operator: bytes, validator, amount: int,
                     source_status: int | None = None) -> int:
    """Bonds `amount` to the validator for `delegator`; returns the shares issued. The tokens come from
    the delegator's account, or (`source_status`, a redelegation) from the pool of that status."""
    tokens, shares = int(validator.tokens), parse_dec(validator.delegator_shares, "shares", ValueError)
    if tokens == 0 and shares:
        raise DelegatorShareExRateInvalidError("cannot delegate to validators with invalid (zero) ex-rate")
    if (tokens + amount) // POWER_REDUCTION > MAX_POWER:
        raise InvalidRequestError(f"{tokens + amount}{DENOM} would give the validator more than CometBFT's "
                                  f"total voting power limit {MAX_POWER}")
    issued = amount * ONE if shares == 0 else shares * amount // tokens
    if source_status is None:
        bank.process_payment(state, ctx, delegator, compute_pool(validator.status), amount)
    else:
        process_pool_move(state, ctx, source_status, validator.status, amount)
    delegation = get_delegation(state, delegator, operator)
    set_message(state, state_key(DELEGATION, delegator, operator), staking_pb2.Delegation(
        delegator_address=crypto.encode_address(delegator), validator_address=validator.operator_address,
        shares=format_dec(compute_shares(delegation) + issued)))
    validator.tokens, validator.delegator_shares = str(tokens + amount), format_dec(shares + issued)
    set_validator(state, operator, validator)
    return issued


def compute_unbond_shares(validator, delegation, amount: int) -> int:
    """The shares `amount` tokens of the validator are (the SDK's ValidateUnbondAmount)."""
    tokens = int(validator.tokens)
    if tokens == 0:
        raise InsufficientSharesError("insufficient delegation shares: the validator has no tokens")
    shares = parse_dec(validator.delegator_shares, "shares", ValueError) * amount // tokens
    if shares > compute_shares(delegation):
        worth = compute_tokens(validator, compute_shares(delegation))
        raise InvalidRequestError(f"invalid shares amount: {amount}{DENOM} is more than the delegation is worth "
                                  f"({worth}{DENOM})")
    return shares


def process_unbond(state, delegator: bytes, operator: bytes, validator, shares: int) -> int:
    """Takes `shares` out of the delegation and the validator; returns the tokens they were worth.

    An operator whose own delegation falls below its min_self_delegation is jailed."""
    delegation = get_delegation(state, delegator, operator)
    remaining = compute_shares(delegation) - shares
    if delegator == operator and not validator.jailed and \
            compute_tokens(validator, remaining) < int(validator.min_self_delegation):
        validator.jailed = True
    if remaining:
        delegation.shares = format_dec(remaining)
        set_message(state, state_key(DELEGATION, delegator, operator), delegation)
    else:
        state.delete(state_key(DELEGATION, delegator, operator))
    total_shares, tokens = parse_dec(validator.delegator_shares, "shares", ValueError), int(validator.tokens)
    left = total_shares - shares
    issued = tokens if left == 0 else compute_tokens(validator, shares)
    validator.tokens, validator.delegator_shares = str(tokens - issued), format_dec(left)
    if left == 0 and validator.status == UNBONDED:
        process_remove_validator(state, operator, validator)
    else:
        set_validator(state, operator, validator)
    return issued


def process_next_unbonding_id(state) -> int:
    key = state_key(NEXT_UNBONDING_ID)
    number = int(state.get(key) or b"1")
    set_number(state, key, number + 1)
    return number


# --- unbonding delegations -------------------------------------------------------------------

def process_unbonding_entry(state, ctx, params, delegator: bytes, operator: bytes, validator, tokens: int) -> int:
    """Queues `tokens` for the delegator; returns the completion time."""
    unbonding = get_unbonding_delegation(state, delegator, operator) or staking_pb2.UnbondingDelegation(
        delegator_address=crypto.encode_address(delegator), validator_address=validator.operator_address)
    completion = ctx.time_ns + compute_nanoseconds(params.unbonding_time)
    unbonding.entries.add(creation_height=ctx.height, completion_time=compute_timestamp(completion),
                          initial_balance=str(tokens), balance=str(tokens), unbonding_id=process_next_unbonding_id(state))
    set_message(state, state_key(UNBONDING_DELEGATION, delegator, operator), unbonding)
    state.set(state_key(UNBONDING_QUEUE, completion, delegator, operator), MARK)
    return completion


def compute_split(entries, time_ns: int) -> tuple[list, list]:
    """(mature, pending): the entries whose completion time has come, and the others."""
    mature = [entry for entry in entries if compute_nanoseconds(entry.completion_time) <= time_ns]
    return mature, [entry for entry in entries if compute_nanoseconds(entry.completion_time) > time_ns]


def process_mature_unbondings(state, ctx) -> None:
    """Pays back the unbonding entries whose completion time has come."""
    for key, _ in list(state.iterate(state_key(UNBONDING_QUEUE), state_key(UNBONDING_QUEUE, ctx.time_ns + 1))):
        _, delegator, operator = decode_key(key)
        state.delete(key)
        unbonding = get_unbonding_delegation(state, delegator, operator)
        mature, pending = compute_split(unbonding.entries if unbonding else (), ctx.time_ns)
        if not mature:
            continue
        record_key = state_key(UNBONDING_DELEGATION, delegator, operator)
        if pending:
            set_message(state, record_key, staking_pb2.UnbondingDelegation(
                delegator_address=unbonding.delegator_address, validator_address=unbonding.validator_address,
                entries=pending))
        else:
            state.delete(record_key)
        amount = sum(int(entry.balance) for entry in mature)
        bank.process_payment(state, ctx, NOT_BONDED_POOL, delegator, amount)
        ctx.emit("complete_unbonding", ("amount", compute_coin_text(amount)),
                 ("validator", unbonding.validator_address), ("delegator", unbonding.delegator_address))


# --- redelegations ---------------------------------------------------------------------------

def get_redelegation(state, delegator: bytes, source: bytes, destination: bytes) -> staking_pb2.Redelegation | None:
    return get_message(state, staking_pb2.Redelegation, state_key(REDELEGATION, delegator, source, destination))


def is_receiving_redelegation(state, delegator: bytes, operator: bytes) -> bool:
    return next(iter(iterate_prefix(state, state_key(REDELEGATION_BY_DESTINATION, delegator, operator))), None) is not None


def compute_redelegation_completion(params, ctx, validator) -> int | None:
    """When a redelegation from `validator` completes; None for at once (its tokens were not bonded)."""
    if validator.status == UNBONDED:
        return None
    if validator.status == UNBONDING:
        return compute_nanoseconds(validator.unbonding_time)
    return ctx.time_ns + compute_nanoseconds(params.unbonding_time)


def process_redelegation_entry(state, ctx, delegator: bytes, source, destination, completion: int, tokens: int,
                               shares: int) -> None:
    (source_address, source_validator), (destination_address, destination_validator) = source, destination
    redelegation = get_redelegation(state, delegator, source_address, destination_address) or staking_pb2.Redelegation(
        delegator_address=crypto.encode_address(delegator), validator_src_address=source_validator.operator_address,
        validator_dst_address=destination_validator.operator_address)
    redelegation.entries.add(creation_height=ctx.height, completion_time=compute_timestamp(completion),
                             initial_balance=str(tokens), shares_dst=format_dec(shares),
                             unbonding_id=process_next_unbonding_id(state))
    set_message(state, state_key(REDELEGATION, delegator, source_address, destination_address), redelegation)
    state.set(state_key(REDELEGATION_BY_DESTINATION, delegator, destination_address, source_address), MARK)
    state.set(state_key(REDELEGATION_QUEUE, completion, delegator, source_address, destination_address), MARK)


def process_mature_redelegations(state, ctx) -> None:
    """Drops the redelegation entries whose completion time has come (their tokens moved at once)."""
    for key, _ in list(state.iterate(state_key(REDELEGATION_QUEUE), state_key(REDELEGATION_QUEUE, ctx.time_ns + 1))):
        _, delegator, source, destination = decode_key(key)
        state.delete(key)
        redelegation = get_redelegation(state, delegator, source, destination)
        mature, pending = compute_split(redelegation.entries if redelegation else (), ctx.time_ns)
        if not mature:
            continue
        if pending:
            set_message(state, state_key(REDELEGATION, delegator, source, destination), staking_pb2.Redelegation(
                delegator_address=redelegation.delegator_address, entries=pending,
                validator_src_address=redelegation.validator_src_address,
                validator_dst_address=redelegation.validator_dst_address))
        else:
            state.delete(state_key(REDELEGATION, delegator, source, destination))
            state.delete(state_key(REDELEGATION_BY_DESTINATION, delegator, destination, source))
        amount = sum(int(entry.initial_balance) for entry in mature)
        ctx.emit("complete_redelegation", ("amount", compute_coin_text(amount)),
                 ("delegator", redelegation.delegator_address),
                 ("source_validator", redelegation.validator_src_address),
                 ("destination_validator", redelegation.validator_dst_address))


# --- MsgCreateValidator and MsgEditValidator -------------------------------------------------

def signer_operator(msg) -> bytes:
    return parse_operator(msg.validator_address)


def signer_delegator(msg) -> bytes:
    return parse_address(msg.delegator_address)


def compute_commission_rates(rates: staking_pb2.CommissionRates) -> tuple[int, int, int]:
    return (compute_decimal(rates.rate, "commission rate"), compute_decimal(rates.max_rate, "commission max rate"),
            compute_decimal(rates.max_change_rate, "commission max change rate"))


def compute_min_self_delegation(text: str) -> int:
    minimum = parse_uint(text or "0", "min_self_delegation", TxDecodeError)
    if minimum == 0:
        raise InvalidRequestError("minimum self delegation must be a positive integer")
    return minimum


def check_stateless_create_validator(msg: tx_pb2.MsgCreateValidator) -> None:
    parse_operator(msg.validator_address)
    compute_consensus_key(msg.pubkey)
    amount = compute_amount(msg.value, "delegation amount")
    check_description(msg.description)
    rates = compute_commission_rates(msg.commission)
    if not any(rates):
        raise InvalidRequestError("empty commission")
    check_commission_rates(*rates)
    if amount < compute_min_self_delegation(msg.min_self_delegation):
        raise SelfDelegationBelowMinimumError("validator's self delegation must be greater than their minimum self delegation")


def check_and_execute_create_validator(state, ctx, msg: tx_pb2.MsgCreateValidator) -> tx_pb2.MsgCreateValidatorResponse:
    operator, params = parse_operator(msg.validator_address), get_params(state)
    rate, max_rate, max_change_rate = compute_commission_rates(msg.commission)
    check_minimum_commission(params, rate)
    if get_validator(state, operator) is not None:
        raise ValidatorOwnerExistsError(f"validator already exist for this operator address {msg.validator_address}; "
                                        "must use new validator operator address")
    validator = staking_pb2.Validator(
        operator_address=format_operator(operator), status=UNBONDED, tokens="0", delegator_shares="0",
        consensus_pubkey=pack_any(keys_pb2.PubKey(key=compute_consensus_key(msg.pubkey)), ED25519_PUBKEY_URL),
        description=msg.description, min_self_delegation=str(compute_min_self_delegation(msg.min_self_delegation)),
        commission=staking_pb2.Commission(update_time=compute_timestamp(ctx.time_ns), commission_rates=staking_pb2.CommissionRates(
            rate=format_dec(rate), max_rate=format_dec(max_rate), max_change_rate=format_dec(max_change_rate))),
    )
    if get_operator(state, compute_consensus_address(validator)) is not None:
        raise ValidatorPubKeyExistsError("validator already exist for this pubkey; must use new validator pubkey")
    check_denom(params, msg.value)
    amount = compute_amount(msg.value, "delegation amount")
    set_validator(state, operator, validator)
    process_delegate(state, ctx, operator, operator, validator, amount)
    ctx.emit("create_validator", ("validator", validator.operator_address), ("amount", compute_coin_text(amount)))
    return tx_pb2.MsgCreateValidatorResponse()


def check_stateless_edit_validator(msg: tx_pb2.MsgEditValidator) -> None:
    parse_operator(msg.validator_address)
    check_description(msg.description)
    if msg.commission_rate and not 0 <= compute_decimal(msg.commission_rate, "commission rate") <= ONE:
        raise InvalidRequestError("commission rate must be between 0 and 1 (inclusive)")
    if msg.min_self_delegation:
        compute_min_self_delegation(msg.min_self_delegation)


def check_and_execute_edit_validator(state, ctx, msg: tx_pb2.MsgEditValidator) -> tx_pb2.MsgEditValidatorResponse:
    operator, params = parse_operator(msg.validator_address), get_params(state)
    validator = get_validator(state, operator)
    if validator is None:
        raise NoValidatorFoundError(f"validator {msg.validator_address} does not exist")
    description = compute_description(validator.description, msg.description)
    check_description(description)
    validator.description.CopyFrom(description)
    if msg.commission_rate:
        rate = compute_decimal(msg.commission_rate, "commission rate")
        check_minimum_commission(params, rate)
        check_new_rate(validator.commission, rate, ctx.time_ns)
        validator.commission.commission_rates.rate = format_dec(rate)
        validator.commission.update_time.CopyFrom(compute_timestamp(ctx.time_ns))
    if msg.min_self_delegation:
        minimum = compute_min_self_delegation(msg.min_self_delegation)
        if minimum <= int(validator.min_self_delegation):
            raise MinSelfDelegationDecreasedError("minimum self delegation cannot be decrease")
        if minimum > int(validator.tokens):
            raise SelfDelegationBelowMinimumError(f"minimum self delegation {minimum} is more than the validator's "
                                                  f"tokens {validator.tokens}")
        validator.min_self_delegation = str(minimum)
    set_validator(state, operator, validator)
    rate_text = format_dec_text(parse_dec(validator.commission.commission_rates.rate, "rate", ValueError))
    ctx.emit("edit_validator", ("commission_rate", rate_text), ("min_self_delegation", validator.min_self_delegation))
    return tx_pb2.MsgEditValidatorResponse()


# --- MsgDelegate, MsgUndelegate, MsgBeginRedelegate ------------------------------------------

def get_existing_validator(state, operator: bytes):
    validator = get_validator(state, operator)
    if validator is None:
        raise NoValidatorFoundError(f"validator {format_operator(operator)} does not exist")
    return validator


def get_existing_delegation(state, delegator: bytes, operator: bytes) -> staking_pb2.Delegation:
    delegation = get_delegation(state, delegator, operator)
    if delegation is None:
        raise NoDelegationError(f"no delegation for (address, validator) tuple "
                                f"({crypto.encode_address(delegator)}, {format_operator(operator)})")
    return delegation


def check_stateless_delegate(msg: tx_pb2.MsgDelegate) -> None:
    parse_address(msg.delegator_address)
    parse_operator(msg.validator_address)
    compute_amount(msg.amount, "delegation amount")


def check_and_execute_delegate(state, ctx, msg: tx_pb2.MsgDelegate) -> tx_pb2.MsgDelegateResponse:
    delegator, operator = parse_address(msg.delegator_address), parse_operator(msg.validator_address)
    validator = get_existing_validator(state, operator)
    check_denom(get_params(state), msg.amount)
    amount = compute_amount(msg.amount, "delegation amount")
    issued = process_delegate(state, ctx, delegator, operator, validator, amount)
    ctx.emit("delegate", ("validator", validator.operator_address), ("delegator", msg.delegator_address),
             ("amount", compute_coin_text(amount)), ("new_shares", format_dec_text(issued)))
    return tx_pb2.MsgDelegateResponse()


def check_stateless_undelegate(msg: tx_pb2.MsgUndelegate) -> None:
    parse_address(msg.delegator_address)
    parse_operator(msg.validator_address)
    compute_amount(msg.amount, "shares amount")


def check_and_execute_undelegate(state, ctx, msg: tx_pb2.MsgUndelegate) -> tx_pb2.MsgUndelegateResponse:
    delegator, operator, params = parse_address(msg.delegator_address), parse_operator(msg.validator_address), get_params(state)
    validator = get_existing_validator(state, operator)
    amount = compute_amount(msg.amount, "shares amount")
    shares = compute_unbond_shares(validator, get_existing_delegation(state, delegator, operator), amount)
    check_denom(params, msg.amount)
    unbonding = get_unbonding_delegation(state, delegator, operator)
    if unbonding is not None and len(unbonding.entries) >= params.max_entries:
        raise MaxUnbondingEntriesError("too many unbonding delegation entries for (delegator, validator) tuple")
    status = validator.status
    tokens = process_unbond(state, delegator, operator, validator, shares)
    process_pool_move(state, ctx, status, UNBONDED, tokens)
    completion = process_unbonding_entry(state, ctx, params, delegator, operator, validator, tokens)
    ctx.emit("unbond", ("validator", validator.operator_address), ("delegator", msg.delegator_address),
             ("amount", compute_coin_text(tokens)), ("completion_time", compute_rfc3339(completion)))
    return tx_pb2.MsgUndelegateResponse(completion_time=compute_timestamp(completion),
                                        amount={"denom": DENOM, "amount": str(tokens)})


def check_stateless_begin_redelegate(msg: tx_pb2.MsgBeginRedelegate) -> None:
    parse_address(msg.delegator_address)
    parse_operator(msg.validator_src_address)
    parse_operator(msg.validator_dst_address)
    compute_amount(msg.amount, "shares amount")


def check_and_execute_begin_redelegate(state, ctx, msg: tx_pb2.MsgBeginRedelegate) -> tx_pb2.MsgBeginRedelegateResponse:
    delegator, params = parse_address(msg.delegator_address), get_params(state)
    source, destination = parse_operator(msg.validator_src_address), parse_operator(msg.validator_dst_address)
    source_validator = get_existing_validator(state, source)
    amount = compute_amount(msg.amount, "shares amount")
    shares = compute_unbond_shares(source_validator, get_existing_delegation(state, delegator, source), amount)
    check_denom(params, msg.amount)
    if source == destination:
        raise SelfRedelegationError("cannot redelegate to the same validator")
    destination_validator = get_validator(state, destination)
    if destination_validator is None:
        raise BadRedelegationDestinationError(f"redelegation destination validator {msg.validator_dst_address} not found")
    if is_receiving_redelegation(state, delegator, source):
        raise TransitiveRedelegationError("redelegation to this validator already in progress; first redelegation to "
                                          "this validator must complete before next redelegation")
    redelegation = get_redelegation(state, delegator, source, destination)
    if redelegation is not None and len(redelegation.entries) >= params.max_entries:
        raise MaxRedelegationEntriesError("too many redelegation entries for (delegator, src-validator, dst-validator) tuple")
    status, completion = source_validator.status, compute_redelegation_completion(params, ctx, source_validator)
    tokens = process_unbond(state, delegator, source, source_validator, shares)
    if tokens == 0:
        raise TinyRedelegationError("too few tokens to redelegate (truncates to zero tokens)")
    issued = process_delegate(state, ctx, delegator, destination, destination_validator, tokens, status)
    if completion is not None:
        process_redelegation_entry(state, ctx, delegator, (source, source_validator),
                                   (destination, destination_validator), completion, tokens, issued)
    completion_time = ctx.time_ns if completion is None else completion
    ctx.emit("redelegate", ("source_validator", msg.validator_src_address),
             ("destination_validator", msg.validator_dst_address), ("amount", compute_coin_text(tokens)),
             ("completion_time", compute_rfc3339(completion_time)))
    return tx_pb2.MsgBeginRedelegateResponse(completion_time=compute_timestamp(completion_time))


MESSAGES = {
    MSG_CREATE_VALIDATOR_URL: MessageHandler(tx_pb2.MsgCreateValidator, signer_operator,
                                             check_stateless_create_validator, check_and_execute_create_validator),
    compute_type_url(tx_pb2.MsgEditValidator): MessageHandler(
        tx_pb2.MsgEditValidator, signer_operator, check_stateless_edit_validator, check_and_execute_edit_validator),
    compute_type_url(tx_pb2.MsgDelegate): MessageHandler(
        tx_pb2.MsgDelegate, signer_delegator, check_stateless_delegate, check_and_execute_delegate),
    compute_type_url(tx_pb2.MsgUndelegate): MessageHandler(
        tx_pb2.MsgUndelegate, signer_delegator, check_stateless_undelegate, check_and_execute_undelegate),
    compute_type_url(tx_pb2.MsgBeginRedelegate): MessageHandler(
        tx_pb2.MsgBeginRedelegate, signer_delegator, check_stateless_begin_redelegate, check_and_execute_begin_redelegate),
}


# --- block hooks -----------------------------------------------------------------------------

def begin_block(state, ctx) -> None:
    process_historical_info(state, ctx)


def end_block(state, ctx) -> None:
    if is_managing_validator_set(state):
        ctx.validator_updates.extend(process_validator_set_updates(state, ctx))
    process_mature_validators(state, ctx)
    process_mature_unbondings(state, ctx)
    process_mature_redelegations(state, ctx)


# --- genesis ---------------------------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    """Params and (from an export) the records; run after bank, whose pool balances must equal what
    the records hold. The gen_txs come after every module's genesis (chain.app)."""
    genesis = decode_sdk_genesis(section, genesis_pb2.GenesisState, DEFAULT_PARAMS, STORE)
    check_params(genesis.params)
    set_message(state, state_key(PARAMS), genesis.params)
    try:
        held = process_import(state, genesis)
    except GenesisError:
        raise
    except (crypto.InvalidAddress, ValueError, TxError, KeyError) as error:
        raise GenesisError(f"staking genesis: {error}") from None
    for pool, amount in zip((BONDED_POOL, NOT_BONDED_POOL), held):
        balance = bank.get_balance(state, pool, DENOM)
        if balance != amount:
            raise AccountingMismatch(f"staking genesis: the records hold {amount}{DENOM} in "
                                     f"{crypto.encode_address(pool)}; its balance is {balance}{DENOM}")


def process_import(state, genesis: genesis_pb2.GenesisState) -> tuple[int, int]:
    """Writes the records; returns what they hold in the bonded and the not-bonded pool."""
    held = {BONDED_POOL: 0, NOT_BONDED_POOL: 0}
    shares: dict[bytes, int] = {}
    for validator in genesis.validators:
        operator = parse_operator(validator.operator_address)
        compute_consensus_key(validator.consensus_pubkey)
        if operator in shares or get_operator(state, compute_consensus_address(validator)) is not None:
            raise GenesisError(f"staking genesis: validator {validator.operator_address} or its consensus key repeats")
        if validator.status not in (BONDED, UNBONDING, UNBONDED):
            raise GenesisError(f"staking genesis: validator {validator.operator_address} has no status")
        held[compute_pool(validator.status)] += parse_uint(validator.tokens, "tokens", ValueError)
        parse_dec(validator.delegator_shares, "delegator_shares", ValueError)
        set_validator(state, operator, validator)
        if validator.status == UNBONDING:
            state.set(state_key(VALIDATOR_QUEUE, compute_nanoseconds(validator.unbonding_time), operator), MARK)
        shares[operator] = 0
    for delegation in genesis.delegations:
        delegator, operator = crypto.decode_address(delegation.delegator_address), parse_operator(delegation.validator_address)
        if operator not in shares:
            raise GenesisError(f"staking genesis: delegation to {delegation.validator_address}, which is no validator")
        shares[operator] += parse_dec(delegation.shares, "shares", ValueError)
        set_message(state, state_key(DELEGATION, delegator, operator), delegation)
    for validator in genesis.validators:
        if shares[parse_operator(validator.operator_address)] != parse_dec(validator.delegator_shares, "shares", ValueError):
            raise AccountingMismatch(f"staking genesis: the delegations to {validator.operator_address} do not add up "
                                     "to its delegator_shares")
    ids = [0]
    for unbonding in genesis.unbonding_delegations:
        delegator, operator = crypto.decode_address(unbonding.delegator_address), parse_operator(unbonding.validator_address)
        set_message(state, state_key(UNBONDING_DELEGATION, delegator, operator), unbonding)
        for entry in unbonding.entries:
            held[NOT_BONDED_POOL] += parse_uint(entry.balance, "balance", ValueError)
            state.set(state_key(UNBONDING_QUEUE, compute_nanoseconds(entry.completion_time), delegator, operator), MARK)
            ids.append(entry.unbonding_id)
    for redelegation in genesis.redelegations:
        delegator = crypto.decode_address(redelegation.delegator_address)
        source = parse_operator(redelegation.validator_src_address)
        destination = parse_operator(redelegation.validator_dst_address)
        set_message(state, state_key(REDELEGATION, delegator, source, destination), redelegation)
        state.set(state_key(REDELEGATION_BY_DESTINATION, delegator, destination, source), MARK)
        for entry in redelegation.entries:
            completion = compute_nanoseconds(entry.completion_time)
            state.set(state_key(REDELEGATION_QUEUE, completion, delegator, source, destination), MARK)
            ids.append(entry.unbonding_id)
    for last in genesis.last_validator_powers:
        operator = parse_operator(last.address)
        if shares.get(operator) is None or get_validator(state, operator).status != BONDED:
            raise GenesisError(f"staking genesis: last validator {last.address} is not a bonded validator")
        set_number(state, state_key(LAST_POWER, operator), last.power)
    set_number(state, state_key(LAST_TOTAL_POWER), parse_uint(genesis.last_total_power.decode() or "0", "power", ValueError))
    set_number(state, state_key(NEXT_UNBONDING_ID), max(ids) + 1)
    return held[BONDED_POOL], held[NOT_BONDED_POOL]


def compute_gen_txs(section) -> list[bytes]:
    """The genutil section's gen_txs (JSON Txs, as SDK gentx files write them) as TxRaw bytes."""
    if not isinstance(section, dict) or not isinstance(section.get("gen_txs", []), list):
        raise GenesisError("genutil genesis must be an object with a list of gen_txs")
    txs = []
    for index, document in enumerate(section.get("gen_txs", [])):
        try:
            tx = json_format.ParseDict(decode_sdk_json(document, cosmos_tx.Tx.DESCRIPTOR), cosmos_tx.Tx())
        except (json_format.ParseError, DecimalError, AttributeError, TypeError) as error:
            raise GenesisError(f"genutil gen_txs[{index}]: {error}") from None
        txs.append(cosmos_tx.TxRaw(body_bytes=tx.body.SerializeToString(), signatures=tx.signatures,
                                   auth_info_bytes=tx.auth_info.SerializeToString()).SerializeToString())
    return txs


def check_gen_tx(index: int, type_urls: tuple) -> None:
    if type_urls != (MSG_CREATE_VALIDATOR_URL,):
        raise GenesisError(f"genutil gen_txs[{index}] must carry one {MSG_CREATE_VALIDATOR_URL} and nothing else")


@public(STORE)
def process_genesis_validator_set(state, ctx) -> list:
    """InitChain's validators: none when genesis has no validators (CometBFT's genesis validators
    stand); else staking drives the set from now on, and this is the set its validators elect."""
    if next(iter(iterate_prefix(state, state_key(VALIDATOR))), None) is None:
        return []
    process_manage_validator_set(state)
    process_validator_set_updates(state, ctx)
    validators = get_validator_set(state)
    if not validators:
        raise GenesisError("staking genesis: no validator has the power to be bonded (at least 1000000ujoule)")
    return validators


@public(STORE)
def export_genesis(state) -> dict:
    genesis = genesis_pb2.GenesisState(
        params=get_params(state),
        last_total_power=str(int(state.get(state_key(LAST_TOTAL_POWER)) or b"0")).encode(),
        last_validator_powers=[genesis_pb2.LastValidatorPower(address=format_operator(operator), power=power)
                               for operator, power in get_last_powers(state).items()],
        validators=get_messages(state, staking_pb2.Validator, state_key(VALIDATOR)),
        delegations=get_messages(state, staking_pb2.Delegation, state_key(DELEGATION)),
        unbonding_delegations=get_messages(state, staking_pb2.UnbondingDelegation, state_key(UNBONDING_DELEGATION)),
        redelegations=get_messages(state, staking_pb2.Redelegation, state_key(REDELEGATION)),
        exported=True,
    )
    return encode_sdk_genesis(genesis)
