"""Staking's gRPC queries, at the Cosmos SDK's paths (cosmos.staking.v1beta1.Query)."""

from chain import bank
from chain.coins import DENOM
from chain.errors import InvalidRequestError, NotFoundError
from chain.proto.cosmos.staking.v1beta1 import query_pb2, staking_pb2
from chain.state import get_page
from chain.tx import parse_address
from chain.validators import (
    BONDED_POOL, DELEGATION, NOT_BONDED_POOL, STORE, VALIDATOR, compute_shares, compute_tokens,
    get_delegation, get_historical_info, get_params, get_unbonding_delegation, get_validator, parse_operator, state_key,
)

STATUSES = {name: number for name, number in staking_pb2.BondStatus.items() if number}

__all__ = ("STORE", "QUERIES")  # STORE: the queries read staking's store


def get_existing_validator(state, text: str) -> staking_pb2.Validator:
    validator = get_validator(state, parse_operator(text))
    if validator is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = validator {text} not found")
    return validator


def compute_delegation_response(state, delegation: staking_pb2.Delegation) -> staking_pb2.DelegationResponse:
    validator = get_validator(state, parse_operator(delegation.validator_address))
    balance = compute_tokens(validator, compute_shares(delegation))
    return staking_pb2.DelegationResponse(delegation=delegation, balance={"denom": DENOM, "amount": str(balance)})


def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params=get_params(state))


def query_validators(state, request: query_pb2.QueryValidatorsRequest) -> query_pb2.QueryValidatorsResponse:
    if request.status and request.status not in STATUSES:
        raise InvalidRequestError(f"invalid validator status {request.status}")
    status = STATUSES.get(request.status)
    keep = (lambda raw: True) if status is None else (lambda raw: staking_pb2.Validator.FromString(raw).status == status)
    rows, next_key = get_page(state, state_key(VALIDATOR), request.pagination, keep)
    return query_pb2.QueryValidatorsResponse(validators=[staking_pb2.Validator.FromString(raw) for _, raw in rows],
                                             pagination={"next_key": next_key})


def query_validator(state, request: query_pb2.QueryValidatorRequest) -> query_pb2.QueryValidatorResponse:
    return query_pb2.QueryValidatorResponse(validator=get_existing_validator(state, request.validator_addr))


def query_delegation(state, request: query_pb2.QueryDelegationRequest) -> query_pb2.QueryDelegationResponse:
    delegator, operator = parse_address(request.delegator_addr), parse_operator(request.validator_addr)
    delegation = get_delegation(state, delegator, operator)
    if delegation is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = delegation with delegator {request.delegator_addr} "
                            f"not found for validator {request.validator_addr}")
    return query_pb2.QueryDelegationResponse(delegation_response=compute_delegation_response(state, delegation))


def query_delegator_delegations(state, request: query_pb2.QueryDelegatorDelegationsRequest
                                ) -> query_pb2.QueryDelegatorDelegationsResponse:
    rows, next_key = get_page(state, state_key(DELEGATION, parse_address(request.delegator_addr)), request.pagination)
    responses = [compute_delegation_response(state, staking_pb2.Delegation.FromString(raw)) for _, raw in rows]
    return query_pb2.QueryDelegatorDelegationsResponse(delegation_responses=responses, pagination={"next_key": next_key})


def query_unbonding_delegation(state, request: query_pb2.QueryUnbondingDelegationRequest
                               ) -> query_pb2.QueryUnbondingDelegationResponse:
    unbonding = get_unbonding_delegation(state, parse_address(request.delegator_addr), parse_operator(request.validator_addr))
    if unbonding is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = unbonding delegation with delegator "
                            f"{request.delegator_addr} not found for validator {request.validator_addr}")
    return query_pb2.QueryUnbondingDelegationResponse(unbond=unbonding)


def query_historical_info(state, request: query_pb2.QueryHistoricalInfoRequest) -> query_pb2.QueryHistoricalInfoResponse:
    if request.height < 0:
        raise InvalidRequestError("height cannot be negative")
    info = get_historical_info(state, request.height)
    if info is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = historical info for height {request.height} not found")
    return query_pb2.QueryHistoricalInfoResponse(hist=info)


def query_pool(state, request: query_pb2.QueryPoolRequest) -> query_pb2.QueryPoolResponse:
    return query_pb2.QueryPoolResponse(pool=staking_pb2.Pool(
        not_bonded_tokens=str(bank.get_balance(state, NOT_BONDED_POOL, DENOM)),
        bonded_tokens=str(bank.get_balance(state, BONDED_POOL, DENOM))))


QUERIES = {
    "/cosmos.staking.v1beta1.Query/Params": (query_pb2.QueryParamsRequest, query_params),
    "/cosmos.staking.v1beta1.Query/Validators": (query_pb2.QueryValidatorsRequest, query_validators),
    "/cosmos.staking.v1beta1.Query/Validator": (query_pb2.QueryValidatorRequest, query_validator),
    "/cosmos.staking.v1beta1.Query/Delegation": (query_pb2.QueryDelegationRequest, query_delegation),
    "/cosmos.staking.v1beta1.Query/DelegatorDelegations": (
        query_pb2.QueryDelegatorDelegationsRequest, query_delegator_delegations),
    "/cosmos.staking.v1beta1.Query/UnbondingDelegation": (
        query_pb2.QueryUnbondingDelegationRequest, query_unbonding_delegation),
    "/cosmos.staking.v1beta1.Query/HistoricalInfo": (query_pb2.QueryHistoricalInfoRequest, query_historical_info),
    "/cosmos.staking.v1beta1.Query/Pool": (query_pb2.QueryPoolRequest, query_pool),
}
