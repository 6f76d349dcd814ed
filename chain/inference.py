"""Proof of inference: registered models, inference requests, and per-layer proofs paid through the market.

A model is a chain of EZKL circuits (layers). Layer 0 commits to the Poseidon hash of the request
input, every inner layer to the Poseidon hash of its output, the last layer publishes its outputs.
Layer i+1 is accepted only when its input hash equals layer i's verified output hash, so layers
proven by different workers stitch into one proof that the whole model ran on the request input.

Inputs are carried on chain as fixed-point integers at layer 0's input scale (q = round(v * 2^scale),
as `zk.instances.compute_quantized` does), never as floats: the chain hashes exactly those integers.

Money. Each layer is a market task `"<request_id>/<layer>"` (work `inference/<model>`, one slot) whose
maximum price is that layer's share of the reward. Layer 0's bid is placed from the requester's
balance when the request is made and the rest of the reward moves to this module's escrow account
(`unplaced`); when layer i is proven its share goes back to the requester and is escrowed at once by
layer i+1's bid. The market pays the assigned prover at the clearing price and refunds the rest to
the requester (its bids' owner); when the request's deadline passes, the module refunds `unplaced`,
and the market expires the open order itself. The escrow account always holds exactly the
`unplaced` of pending requests.

Where proofs are verified. The vk is chain state and a model registered earlier in the same block
must already count, the per-block proof budget must be charged before the expensive work, and a
replayed or mismatched proof should be refused by cheap state checks without running EZKL; so the
proof is verified at the end of `check_and_execute`, not in `check_stateless`. It runs through the
`ProofVerifier` the node hands the app (zk.verify.ModelVerifier, reached as `ctx.verifier`), whose
cache keyed by (vk sha256, proof sha256) makes CheckTx and FinalizeBlock verify a proof once, and
whose child process keeps EZKL panics away from the node.

Determinism. A proof's validity is a pure function of (vk, settings, SRS, proof). An inconclusive
outcome (the verifier process timed out or died: this node's problem, not the proof's) is retried
once; if it is inconclusive again the message fails with `VerifierUnavailableError`. A node that
hits this in FinalizeBlock while its peers verified the proof computes a different app hash and
halts at the next commit rather than accepting an unverified proof; the timeout (seconds) is
three orders of magnitude above a verification (milliseconds) to make that an overload signal only.
A node missing the SRS a model pins fails the same way.

Store layout (`encode_key`; ints are 32-byte big-endian):
    0x01                   -> Params
    0x02                   -> next request id
    0x10 | model name      -> Model
    0x20 | request id      -> Request
    0x21 | height | id     -> the request expires at the end of height
    0x22 | id | layer      -> LayerResult
    0x23 | proof sha256    -> b"\x01": proofs already accepted (EZKL proofs are randomized, so an
                              honest worker never sends the same bytes twice; a copy is a replay)
"""

import hashlib
import json
import re
from functools import lru_cache
from typing import Protocol


from chain import bank, crypto, market
from chain.coins import DENOM, parse_uint
from chain.errors import GenesisError, NotFoundError, TxError, UnauthorizedError
from chain.genesis import decode_genesis, encode_json
from chain.proto.maxwell.inference.v1 import inference_pb2, query_pb2, tx_pb2
from chain.state import (
    MessageHandler, compute_sub_state, decode_key as decode_key_of, encode_key, get_message, get_messages,
    get_shared_message, get_number, iterate_prefix, process_next_number, public, set_message, set_number,
)
from chain.tx import compute_type_url, parse_address
from zk.instances import InstanceError, compute_output_hash, compute_output_size, decode_instances, is_ezkl_failure

STORE = "inference"
CODESPACE = "inference"
ESCROW_ACCOUNT = "inference_escrow"
ESCROW = bank.compute_module_address(ESCROW_ACCOUNT)
MODEL_PATTERN = market.MODEL_PATTERN
SRS_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_LAYERS = 16
MAX_VALUES = 4096
MAX_VK_BYTES = 1 << 20
MAX_SETTINGS_BYTES = 1 << 16
MAX_PROOF_BYTES = 16 * 1024
INT64_MAX = 2**63 - 1
MAX_LOGROWS = 20  # bounds a circuit's size, so verifying one of its proofs takes bounded time

PARAMS = 0x01
NEXT_REQUEST_ID = 0x02
MODEL = 0x10
REQUEST = 0x20
EXPIRY = 0x21
LAYER_RESULT = 0x22
USED_PROOF = 0x23
KEYS = {
    PARAMS: (), NEXT_REQUEST_ID: (), MODEL: (str,), REQUEST: (int,), EXPIRY: (int, int),
    LAYER_RESULT: (int, int), USED_PROOF: (bytes,),
}

DEFAULT_PARAMS = inference_pb2.Params(
    authority="",
    max_proofs_per_block=100,
    verify_gas_base=50_000,
    verify_gas_per_row=10,
)
PENDING = inference_pb2.STATUS_PENDING


# --- errors ----------------------------------------------------------------------------------

class InferenceError(TxError):
    codespace = CODESPACE


class InvalidModelError(InferenceError):
    code = 2


class ModelExistsError(InferenceError):
    code = 3


class UnregisteredModelError(InferenceError):
    code = 4


class InvalidInputError(InferenceError):
    code = 5


class InvalidRewardError(InferenceError):
    code = 6


class InvalidDeadlineError(InferenceError):
    code = 7


class RequestNotFoundError(InferenceError):
    code = 8


class RequestClosedError(InferenceError):
    code = 9


class DeadlinePassedError(InferenceError):
    code = 10


class InvalidLayerError(InferenceError):
    code = 11


class LayerAlreadyProvenError(InferenceError):
    code = 12


class LayerNotReadyError(InferenceError):
    code = 13


class NotAssignedError(InferenceError):
    code = 14


class ProofBudgetExceededError(InferenceError):
    code = 15


class MalformedProofError(InferenceError):
    code = 16


class InputHashMismatchError(InferenceError):
    code = 17


class OutputMismatchError(InferenceError):
    code = 18


class InvalidProofError(InferenceError):
    code = 19


class VerifierUnavailableError(InferenceError):
    code = 20


class ProofReplayedError(InferenceError):
    code = 21


class UnservableRequestError(InferenceError):
    code = 22


class VerifierFault(Exception):
    """This node could not verify a proof in a block while its peers could: not a tx outcome (that
    could differ between nodes) but a fault that stops the node, loudly, before it commits."""


class AccountingMismatch(GenesisError):
    pass


class Verdict(Protocol):
    is_valid: bool
    reason: str | None


class ProofVerifier(Protocol):
    """What the node hands the app to check proofs (zk.verify.ModelVerifier does it with EZKL)."""

    def verify(self, name: str, layer: inference_pb2.Layer, proof: bytes) -> Verdict:
        """The verdict on `proof` for `layer` of model `name`: a pure function of the layer and the
        proof; raises VerifierUnavailableError when this node cannot reach one."""


# --- keys, params, records -------------------------------------------------------------------

def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_params(state) -> inference_pb2.Params:
    return get_shared_message(state, inference_pb2.Params, state_key(PARAMS))


@public(STORE)
def get_model(state, name: str) -> inference_pb2.Model | None:
    return get_message(state, inference_pb2.Model, state_key(MODEL, name))


@public(STORE)
def get_request(state, request_id: int) -> inference_pb2.Request | None:
    return get_message(state, inference_pb2.Request, state_key(REQUEST, request_id))


@public(STORE)
def get_layer_result(state, request_id: int, layer: int) -> inference_pb2.LayerResult | None:
    return get_message(state, inference_pb2.LayerResult, state_key(LAYER_RESULT, request_id, layer))




def compute_task_ref(request_id: int, layer: int) -> str:
    return f"{request_id}/{layer}"


class MalformedTaskRef(ValueError):
    """The text is not a task ref that compute_task_ref makes."""


def parse_task_ref(task_ref: str) -> tuple[int, int]:
    """The (request id, layer) of a task ref, the inverse of compute_task_ref."""
    request_id, _, layer = task_ref.partition("/")
    if not (request_id.isdecimal() and layer.isdecimal()) or compute_task_ref(int(request_id), int(layer)) != task_ref:
        raise MalformedTaskRef(f"task {task_ref!r} is not <request id>/<layer>")
    return int(request_id), int(layer)


def compute_layer_share(reward: int, layers: int, layer: int) -> int:
    """Equal shares of the reward; layer 0 also takes the remainder."""
    share = reward // layers
    return share + reward % layers if layer == 0 else share


def format_felt(value: int) -> str:
    return f"0x{value:064x}"


# --- circuits: what a layer's settings say ---------------------------------------------------

@lru_cache(maxsize=256)
def load_settings(text: str) -> dict:
    """A layer's settings, parsed and checked to be a verifiable hashed-input circuit."""
    try:
        settings = json.loads(text)
        run_args = settings["run_args"]
        logrows = run_args["logrows"]
        input_scale, = settings["model_input_scales"]
        output_scale, = settings["model_output_scales"]
        input_hashed = _is_hashed(run_args["input_visibility"])
        output_visibility = run_args["output_visibility"]
        params_fixed = run_args["param_visibility"] == "Fixed"
        output_public = output_visibility == "Public"
        output_size = compute_output_size(settings) if output_public else 0
        input_bound = run_args["decomp_base"] ** run_args["decomp_legs"] // 2
    except (ValueError, KeyError, TypeError, InstanceError) as error:
        raise InvalidModelError(f"invalid circuit settings: {error!r}") from None
    if not (input_hashed and params_fixed):
        raise InvalidModelError("circuits must hash their input and fix their parameters")
    if not (isinstance(logrows, int) and 1 <= logrows <= MAX_LOGROWS):
        raise InvalidModelError(f"invalid logrows {logrows!r}: circuits have 2^1 to 2^{MAX_LOGROWS} rows")
    if not 0 <= output_size <= MAX_VALUES:
        raise InvalidModelError(f"invalid output size {output_size}")
    return {
        "logrows": logrows,
        "input_scale": input_scale,
        "output_scale": output_scale,
        "output_hashed": _is_hashed(output_visibility),
        "output_public": output_public,
        "output_size": output_size,
        "input_bound": input_bound,  # inputs are range-checked by EZKL's decomposition: |q| < bound
        "settings": settings,
    }


def _is_hashed(visibility) -> bool:
    return isinstance(visibility, dict) and "Hashed" in visibility


def check_model(model: inference_pb2.Model) -> None:
    """The layer graph: hashed inner outputs, a public last output, scales that line up."""
    if not MODEL_PATTERN.fullmatch(model.name):
        raise InvalidModelError(f"model name {model.name!r} must match {MODEL_PATTERN.pattern}")
    if not 0 < model.input_size <= MAX_VALUES:
        raise InvalidModelError(f"a model takes 1 to {MAX_VALUES} input values")
    if not 1 <= len(model.layers) <= MAX_LAYERS:
        raise InvalidModelError(f"a model has 1 to {MAX_LAYERS} layers")
    previous = None
    for index, layer in enumerate(model.layers):
        if not layer.vk or len(layer.vk) > MAX_VK_BYTES:
            raise InvalidModelError(f"layer {index}: vk must have 1 to {MAX_VK_BYTES} bytes")
        if len(layer.settings.encode()) > MAX_SETTINGS_BYTES:
            raise InvalidModelError(f"layer {index}: settings exceed {MAX_SETTINGS_BYTES} bytes")
        if not SRS_SHA256_PATTERN.fullmatch(layer.srs_sha256):
            raise InvalidModelError(f"layer {index}: srs_sha256 must be 64 lowercase hex digits")
        if not 0 < layer.proof_size <= MAX_PROOF_BYTES:
            raise InvalidModelError(f"layer {index}: invalid proof size {layer.proof_size}")
        info = load_settings(layer.settings)
        last = index == len(model.layers) - 1
        if last and not info["output_public"]:
            raise InvalidModelError(f"layer {index}: the last layer must publish its output")
        if not last and not info["output_hashed"]:
            raise InvalidModelError(f"layer {index}: an inner layer must hash its output")
        if previous is not None and info["input_scale"] != previous["output_scale"]:
            raise InvalidModelError(f"layer {index}: input scale differs from layer {index - 1}'s output scale")
        previous = info


def compute_verify_gas(params: inference_pb2.Params, layer: inference_pb2.Layer) -> int:
    """Verification cost grows with the circuit's rows (2^logrows), as measured (tests/bench/inference.py)."""
    return params.verify_gas_base + params.verify_gas_per_row * (1 << load_settings(layer.settings)["logrows"])


def compute_hash(values) -> int:
    """Poseidon over fixed-point values, as EZKL hashes a circuit's input or output."""
    try:
        return compute_output_hash(list(values))
    except BaseException as error:
        if not is_ezkl_failure(error):
            raise
        raise InvalidInputError(f"cannot hash the values: {type(error).__name__}") from None


# --- MsgRegisterModel ------------------------------------------------------------------------

def signer_register(msg: tx_pb2.MsgRegisterModel) -> bytes:
    return parse_address(msg.authority)


def check_stateless_register(msg: tx_pb2.MsgRegisterModel) -> None:
    parse_address(msg.authority)
    check_model(msg.model)


def check_and_execute_register(state, ctx, msg: tx_pb2.MsgRegisterModel) -> tx_pb2.MsgRegisterModelResponse:
    authority = get_params(state).authority
    if not authority or msg.authority != authority:
        raise UnauthorizedError(f"unauthorized: only the inference authority {authority or '(none)'} registers models")
    check_model(msg.model)
    process_register_model(state, msg.model)
    ctx.emit("model_registered", ("model", msg.model.name), ("layers", str(len(msg.model.layers))))
    return tx_pb2.MsgRegisterModelResponse()


def process_register_model(state, model: inference_pb2.Model) -> None:
    if state.get(state_key(MODEL, model.name)) is not None:
        raise ModelExistsError(f"model {model.name!r} is already registered")
    set_message(state, state_key(MODEL, model.name), model)


# --- MsgRequestInference ---------------------------------------------------------------------

def _parse_reward(text: str) -> int:
    reward = parse_uint(text, "reward", InvalidRewardError)
    if reward == 0:
        raise InvalidRewardError(f"invalid reward {text!r}: must be positive")
    return reward


def signer_request(msg: tx_pb2.MsgRequestInference) -> bytes:
    return parse_address(msg.requester)


def check_stateless_request(msg: tx_pb2.MsgRequestInference) -> None:
    parse_address(msg.requester)
    if not MODEL_PATTERN.fullmatch(msg.model):
        raise InvalidModelError(f"model name {msg.model!r} must match {MODEL_PATTERN.pattern}")
    if not 0 < len(msg.input) <= MAX_VALUES:
        raise InvalidInputError(f"an input has 1 to {MAX_VALUES} values")
    _parse_reward(msg.reward)
    if msg.deadline_height <= 0:
        raise InvalidDeadlineError("the deadline height must be positive")


def check_and_execute_request(state, ctx, msg: tx_pb2.MsgRequestInference) -> tx_pb2.MsgRequestInferenceResponse:
    model = get_model(state, msg.model)
    if model is None:
        raise UnregisteredModelError(f"model {msg.model!r} is not registered")
    if len(msg.input) != model.input_size:
        raise InvalidInputError(f"model {msg.model} takes {model.input_size} values, got {len(msg.input)}")
    reward, layers = _parse_reward(msg.reward), len(model.layers)
    if reward < layers:
        raise InvalidRewardError(f"a reward of {reward}{DENOM} cannot pay {layers} layers")
    if msg.deadline_height <= ctx.height:
        raise InvalidDeadlineError(f"deadline height {msg.deadline_height} is not after height {ctx.height}")
    check_input(model, msg.input)
    check_servable(state, ctx, model, reward)
    requester = parse_address(msg.requester)
    request_id = process_next_number(state, state_key(NEXT_REQUEST_ID))
    first = compute_layer_share(reward, layers, 0)
    bank.process_payment(state, ctx, requester, ESCROW, reward - first)
    market.process_place_bid(state, ctx, requester, market.INFERENCE_PREFIX + model.name, 1, first,
                             msg.deadline_height, compute_task_ref(request_id, 0))
    request = inference_pb2.Request(
        id=request_id, requester=msg.requester, model=model.name, input=list(msg.input),
        input_hash=format_felt(compute_hash(msg.input)), reward=str(reward), deadline_height=msg.deadline_height,
        created_height=ctx.height, unplaced=str(reward - first), status=PENDING,
    )
    _save_request(state, request)
    state.set(state_key(EXPIRY, request.deadline_height, request_id), b"\x01")
    ctx.emit("inference_requested", ("request_id", str(request_id)), ("model", model.name),
             ("requester", msg.requester), ("reward", str(reward)), ("input_hash", request.input_hash),
             ("deadline_height", str(msg.deadline_height)))
    return tx_pb2.MsgRequestInferenceResponse(request_id=request_id)


def check_input(model: inference_pb2.Model, values) -> None:
    """Inputs within the range layer 0's circuit checks (in its fixed point: q = v · 2^scale)."""
    info = load_settings(model.layers[0].settings)
    bound = info["input_bound"]
    for index, value in enumerate(values):
        if not -bound < value < bound:
            raise InvalidInputError(
                f"input {index} is {value} (fixed point at scale {info['input_scale']}); model {model.name} takes "
                f"values in ({-bound}, {bound}), i.e. |v| < {bound / 2 ** info['input_scale']:g}")


def check_servable(state, ctx, model: inference_pb2.Model, reward: int) -> None:
    """Every layer's share of the reward meets the lowest ask of the providers serving the model now,
    so a request is not accepted that the market cannot carry to the end."""
    work = market.INFERENCE_PREFIX + model.name
    ask = market.get_lowest_ask(state, work, ctx.height)
    layers = len(model.layers)
    share = min(compute_layer_share(reward, layers, layer) for layer in range(layers))
    if ask is None:
        raise UnservableRequestError(f"no provider serves {work} now")
    if share < ask:
        raise UnservableRequestError(
            f"a reward of {reward}{DENOM} pays {share}{DENOM} per layer; the lowest ask for {work} is "
            f"{ask}{DENOM}, so {layers} layers need a reward of at least {ask * layers}{DENOM}")


def process_end(state, ctx, request: inference_pb2.Request, status: int, reason: str, *attributes) -> None:
    """The request ends: what the module still holds goes back to the requester, and why is recorded.

    Of the reward, what was not paid to provers returns to the requester: the unplaced shares here, an
    open layer's share by the market when its order or assignment ends."""
    bank.process_payment(state, ctx, ESCROW, parse_address(request.requester), int(request.unplaced))
    request.unplaced, request.status, request.ended_height, request.end_reason = "0", status, ctx.height, reason
    _save_request(state, request)
    kind = {inference_pb2.STATUS_COMPLETE: "inference_completed", inference_pb2.STATUS_EXPIRED: "inference_expired",
            inference_pb2.STATUS_FAILED: "inference_failed"}[status]
    ctx.emit(kind, ("request_id", str(request.id)), ("model", request.model), ("requester", request.requester),
             ("paid", request.paid or "0"), ("refund", str(int(request.reward) - int(request.paid or "0"))),
             ("reason", reason), *attributes)


def _save_request(state, request: inference_pb2.Request) -> None:
    set_message(state, state_key(REQUEST, request.id), request)


# --- MsgSubmitInference ----------------------------------------------------------------------

def signer_submit(msg: tx_pb2.MsgSubmitInference) -> bytes:
    return parse_address(msg.prover)


def check_stateless_submit(msg: tx_pb2.MsgSubmitInference) -> None:
    parse_address(msg.prover)
    if not 0 < len(msg.proof) <= MAX_PROOF_BYTES:
        raise MalformedProofError(f"a proof has 1 to {MAX_PROOF_BYTES} bytes, got {len(msg.proof)}")
    if not 0 < len(msg.outputs) <= MAX_VALUES:
        raise OutputMismatchError(f"outputs have 1 to {MAX_VALUES} values")
    if msg.layer >= MAX_LAYERS:
        raise InvalidLayerError(f"layer {msg.layer} is beyond the {MAX_LAYERS} layers a model may have")




def check_and_execute_submit(state, ctx, msg: tx_pb2.MsgSubmitInference) -> tx_pb2.MsgSubmitInferenceResponse:
    """Cheap state checks, then the proof's instances, then EZKL; the result is recorded and paid."""
    request = get_request(state, msg.request_id)
    if request is None:
        raise RequestNotFoundError(f"inference request {msg.request_id} does not exist")
    if ctx.height > request.deadline_height:
        raise DeadlinePassedError(f"inference request {msg.request_id} expired at height {request.deadline_height}")
    if request.status != PENDING:
        raise RequestClosedError(f"inference request {msg.request_id} is {inference_pb2.Status.Name(request.status)}")
    model = get_model(state, request.model)
    if model is None:
        raise UnregisteredModelError(f"model {request.model!r} is not registered")
    if msg.layer >= len(model.layers):
        raise InvalidLayerError(f"model {model.name} has {len(model.layers)} layers, not layer {msg.layer}")
    if msg.layer < request.proven_layers:
        raise LayerAlreadyProvenError(f"layer {msg.layer} of request {msg.request_id} is already proven")
    if msg.layer > request.proven_layers:
        raise LayerNotReadyError(f"request {msg.request_id} waits for layer {request.proven_layers}")
    task_ref = compute_task_ref(request.id, msg.layer)
    assignment = market.get_assignment(state, task_ref)
    if assignment is None or assignment.provider != msg.prover:
        raise NotAssignedError(f"task {task_ref} is not assigned to {msg.prover}")
    params = get_params(state)

    proof_hash = hashlib.sha256(msg.proof).digest()
    if state.get(state_key(USED_PROOF, proof_hash)) is not None:
        raise ProofReplayedError("this proof was already accepted")

    layer = model.layers[msg.layer]
    info = load_settings(layer.settings)
    try:
        instances = decode_instances(msg.proof, info["settings"])
    except InstanceError as error:
        raise MalformedProofError(f"malformed proof: {error}") from None
    previous = get_layer_result(state, request.id, msg.layer - 1) if msg.layer else None
    expected_input = request.input_hash if previous is None else previous.output_hash
    if format_felt(instances.input_hash) != expected_input:
        source = "the request input" if previous is None else f"layer {msg.layer - 1}'s output"
        raise InputHashMismatchError(f"the proof's input hash is not the hash of {source}")
    outputs = tuple(msg.outputs)
    output_hash = compute_hash(outputs)
    if info["output_hashed"] and instances.output_hash != output_hash:
        raise OutputMismatchError("the outputs do not hash to the proof's output hash")
    if not info["output_hashed"] and instances.outputs != outputs:
        raise OutputMismatchError("the outputs are not the proof's public outputs")

    process_verify(state, ctx, params, model, layer, bytes(msg.proof))

    state.set(state_key(USED_PROOF, proof_hash), b"\x01")
    assignment = market.process_task_proven(state, ctx, task_ref, parse_address(msg.prover))
    record = inference_pb2.LayerResult(
        request_id=request.id, layer=msg.layer, input_hash=expected_input, output_hash=format_felt(output_hash),
        outputs=list(outputs), prover=msg.prover, height=ctx.height, price=assignment.price,
    )
    set_message(state, state_key(LAYER_RESULT, request.id, msg.layer), record)
    ctx.emit("inference_verified", ("request_id", str(request.id)), ("model", model.name), ("layer", str(msg.layer)),
             ("input_hash", record.input_hash), ("output_hash", record.output_hash), ("prover", msg.prover))
    request.proven_layers += 1
    request.paid = str(int(request.paid or "0") + int(assignment.price))
    if request.proven_layers == len(model.layers):
        predicted = str(compute_predicted_class(outputs))
        process_end(state, ctx, request, inference_pb2.STATUS_COMPLETE, f"complete: class {predicted}",
                    ("predicted_class", predicted))
    else:
        _process_next_layer(state, ctx, request, model)
    return tx_pb2.MsgSubmitInferenceResponse(complete=request.status == inference_pb2.STATUS_COMPLETE)


def compute_proof_count(type_urls) -> int:
    """How many proofs a tx's messages ask to verify."""
    return sum(url == SUBMIT_URL for url in type_urls)


def process_verify(state, ctx, params, model: inference_pb2.Model, layer: inference_pb2.Layer, proof: bytes) -> None:
    """Spend one of the block's proof verifications and its gas, then verify: a proof that fails still
    spent both, so no block verifies more than `max_proofs_per_block` proofs, valid or not."""
    if ctx.budget.proofs >= params.max_proofs_per_block:
        raise ProofBudgetExceededError(f"this block already verified {ctx.budget.proofs} proofs, the limit")
    ctx.budget.proofs += 1
    state.meter.consume(compute_verify_gas(params, layer), "VerifyProof")
    if ctx.verifier is None:
        raise VerifierUnavailableError("this node runs no proof verifier")
    try:
        result = ctx.verifier.verify(model.name, layer, proof)
    except VerifierUnavailableError as error:
        if ctx.budget.in_block:
            raise VerifierFault(f"this node cannot verify a proof of {model.name}/{layer.circuit} in a block: "
                                f"{error}; stopping rather than deciding the tx differently from its peers") from None
        raise
    if not result.is_valid:
        raise InvalidProofError(f"invalid proof: {result.reason}")


def _process_next_layer(state, ctx, request: inference_pb2.Request, model: inference_pb2.Model) -> None:
    """Put the next layer in the market; if it cannot be placed the request fails and is refunded.

    The proof just verified is still paid: the bid is tried in its own branch.
    """
    layer = request.proven_layers
    share = compute_layer_share(int(request.reward), len(model.layers), layer)
    requester = parse_address(request.requester)
    attempt, branch = compute_sub_state(state)
    events = len(ctx.events)
    try:
        bank.process_payment(attempt, ctx, ESCROW, requester, share)
        market.process_place_bid(attempt, ctx, requester, market.INFERENCE_PREFIX + model.name, 1, share,
                                 request.deadline_height, compute_task_ref(request.id, layer))
    except market.MarketError as error:
        del ctx.events[events:]
        process_end(state, ctx, request, inference_pb2.STATUS_FAILED, f"layer {layer} could not be placed: {error}",
                    ("layer", str(layer)))
        return
    branch.write()
    request.unplaced = str(int(request.unplaced) - share)
    _save_request(state, request)


def compute_predicted_class(outputs) -> int:
    """Index of the largest output (the first on a tie)."""
    return max(range(len(outputs)), key=lambda i: (outputs[i], -i))


# --- end block -------------------------------------------------------------------------------

def end_block(state, ctx) -> None:
    """Requests whose deadline is this height expire: the module refunds what it still holds."""
    for key, _ in list(iterate_prefix(state, state_key(EXPIRY, ctx.height))):
        state.delete(key)
        request = get_request(state, decode_key(key)[1])
        if request.status == PENDING:
            model = get_model(state, request.model)
            process_end(state, ctx, request, inference_pb2.STATUS_EXPIRED,
                        f"expired at height {ctx.height} with {request.proven_layers} of {len(model.layers)} layers proven")


SUBMIT_URL = compute_type_url(tx_pb2.MsgSubmitInference)
MESSAGES = {
    compute_type_url(tx_pb2.MsgRegisterModel): MessageHandler(
        tx_pb2.MsgRegisterModel, signer_register, check_stateless_register, check_and_execute_register),
    compute_type_url(tx_pb2.MsgRequestInference): MessageHandler(
        tx_pb2.MsgRequestInference, signer_request, check_stateless_request, check_and_execute_request),
    SUBMIT_URL: MessageHandler(
        tx_pb2.MsgSubmitInference, signer_submit, check_stateless_submit, check_and_execute_submit),
}


# --- genesis ---------------------------------------------------------------------------------

def compute_default_genesis(authority: str = "", models: list[dict] | None = None) -> dict:
    return {"params": {**encode_json(DEFAULT_PARAMS), "authority": authority}, "models": models or []}


def init_chain(state, section: dict, ctx) -> None:
    """Params, models and (from an export) requests; run after bank and market, since the module
    account's balance must equal what pending requests hold and their orders live in the market."""
    genesis = decode_genesis(section, inference_pb2.GenesisState, DEFAULT_PARAMS, STORE)
    try:
        if genesis.params.authority:
            crypto.decode_address(genesis.params.authority)
        set_message(state, state_key(PARAMS), genesis.params)
        for model in genesis.models:
            check_model(model)
            process_register_model(state, model)
        held = _import_requests(state, genesis)
    except (crypto.InvalidAddress, TxError, ValueError) as error:
        raise GenesisError(f"inference genesis: {error}") from None
    balance = bank.get_balance(state, ESCROW, DENOM)
    if balance != held:
        raise AccountingMismatch(f"inference genesis: pending requests hold {held}{DENOM}; its account has {balance}{DENOM}")


def _import_requests(state, genesis: inference_pb2.GenesisState) -> int:
    held = 0
    for request in genesis.requests:
        if get_model(state, request.model) is None:
            raise GenesisError(f"request {request.id} names unregistered model {request.model!r}")
        _save_request(state, request)
        if request.status == PENDING:
            held += int(request.unplaced)
            state.set(state_key(EXPIRY, request.deadline_height, request.id), b"\x01")
    for record in genesis.results:
        set_message(state, state_key(LAYER_RESULT, record.request_id, record.layer), record)
    for proof_hash in genesis.used_proofs:
        state.set(state_key(USED_PROOF, proof_hash), b"\x01")
    last = max((r.id for r in genesis.requests), default=0)
    set_number(state, state_key(NEXT_REQUEST_ID), max(genesis.next_request_id, last + 1))
    return held


@public(STORE)
def export_genesis(state) -> dict:
    genesis = inference_pb2.GenesisState(
        params=get_params(state),
        models=get_messages(state, inference_pb2.Model, state_key(MODEL)),
        next_request_id=get_number(state, state_key(NEXT_REQUEST_ID), 1),
        requests=get_messages(state, inference_pb2.Request, state_key(REQUEST)),
        results=get_messages(state, inference_pb2.LayerResult, state_key(LAYER_RESULT)),
        used_proofs=[decode_key(key)[0] for key, _ in iterate_prefix(state, state_key(USED_PROOF))],
    )
    return encode_json(genesis, all_fields=True)


# --- queries ---------------------------------------------------------------------------------

def query_models(state, request: query_pb2.QueryModelsRequest) -> query_pb2.QueryModelsResponse:
    return query_pb2.QueryModelsResponse(models=get_messages(state, inference_pb2.Model, state_key(MODEL)))


def query_model(state, request: query_pb2.QueryModelRequest) -> query_pb2.QueryModelResponse:
    model = get_model(state, request.name) if MODEL_PATTERN.fullmatch(request.name) else None
    if model is None:
        raise NotFoundError(f"model {request.name!r} is not registered")
    return query_pb2.QueryModelResponse(model=model)


def query_request(state, request: query_pb2.QueryRequestRequest) -> query_pb2.QueryRequestResponse:
    record = get_request(state, request.request_id)
    if record is None:
        raise NotFoundError(f"inference request {request.request_id} does not exist")
    return query_pb2.QueryRequestResponse(request=record)


def query_result(state, request: query_pb2.QueryResultRequest) -> query_pb2.QueryResultResponse:
    record = get_request(state, request.request_id)
    if record is None:
        raise NotFoundError(f"inference request {request.request_id} does not exist")
    layers = [get_layer_result(state, record.id, i) for i in range(record.proven_layers)]
    result = inference_pb2.Result(
        request_id=record.id, model=record.model, status=record.status, layers=layers, predicted_class=-1)
    if record.status == inference_pb2.STATUS_COMPLETE:
        result.outputs.extend(layers[-1].outputs)
        result.predicted_class = compute_predicted_class(layers[-1].outputs)
    return query_pb2.QueryResultResponse(result=result)


QUERIES = {
    "/maxwell.inference.v1.Query/Models": (query_pb2.QueryModelsRequest, query_models),
    "/maxwell.inference.v1.Query/Model": (query_pb2.QueryModelRequest, query_model),
    "/maxwell.inference.v1.Query/Request": (query_pb2.QueryRequestRequest, query_request),
    "/maxwell.inference.v1.Query/Result": (query_pb2.QueryResultRequest, query_result),
}
