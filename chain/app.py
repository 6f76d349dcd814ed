"""The maxwell application: ABCI 2.0 calls in, deterministic state transitions out.

The chain is the components of `MODULES`, in order. Each is a module with a `STORE` and any of:
`MESSAGES` (type URL -> MessageHandler), `QUERIES` (gRPC method path -> (request class, handler)),
`init_chain(state, section, ctx)`, `export_genesis(state)`, `begin_block(state, ctx)` and
`end_block(state, ctx)`; everything below is derived from that list. Each call gets a State of the
module's own store; a module reaches another's data only through that module's `public` functions.

Read top-down: a block arrives in `finalize_block` → the begin_block hooks (staking keeps the
historical info, slashing counts the last commit's votes and punishes the evidence, heat applies the
readings of the heat tx the proposer put first) → `execute_tx` for each transaction (ante, then
messages) → the end_block hooks in registry order (staking applies the validator set, whose changes
FinalizeBlock returns, and pays matured unbondings; the market clears, processes pay rent or die,
expired inference requests are refunded) → the app hash of the staged writes. `commit` persists the
block in one synced batch. CheckTx runs the same `execute_tx` on a check state that is reset to the
committed state after every commit.

InitChain writes every module's genesis, then runs the `genutil` gen_txs as txs; the validators they
bond are its answer. Without validators in genesis CometBFT's genesis validators stand and staking
never sends an update.
"""

import gc
import json
from collections import OrderedDict
from fractions import Fraction

from chain import auth, bank, crypto, heat, inference, market, process, slashing, staking
from chain.ante import SignatureCache, compute_signature_key, process_ante
from chain.coins import DENOM
from chain.errors import GenesisError, InsufficientFeeError, InvalidRequestError, TxError, UnknownRequestError
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci
from chain.proto.cosmos.tx.v1beta1 import service_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.crypto import proof_pb2
from chain.state import Budget, Context, GasMeter, GasParams, State, write_events
from chain.store import Branch, Store, StoreError
from chain.tx import DecodedTx, MAX_GAS_LIMIT, compute_gas_cost, decode_tx, pack_any
from ibc import core as ibc, ica_controller, ica_host, transfer

APP_NAME = "maxwell"
APP_VERSION = 1
SOFTWARE_VERSION = "0.1.0"

MODULES = (auth, bank, staking, slashing, heat, market, process, inference, ibc, transfer, ica_controller, ica_host)

STORES = tuple(module.STORE for module in MODULES)
HANDLERS = {url: handler for module in MODULES for url, handler in getattr(module, "MESSAGES", {}).items()}
MODULE_OF = {url: module.STORE for module in MODULES for url in getattr(module, "MESSAGES", {})}
QUERIES = {path: route for module in MODULES for path, route in getattr(module, "QUERIES", {}).items()}
QUERY_STORE = {path: module.STORE for module in MODULES for path in getattr(module, "QUERIES", {})}
QUERY_PATHS = {request_class: path for path, (request_class, _) in QUERIES.items()}
GENESIS = tuple((module.STORE, module.init_chain, module.export_genesis) for module in MODULES)
ica_host.bind_router(HANDLERS, MODULE_OF)
BEGIN_BLOCK = tuple((module.STORE, module.begin_block) for module in MODULES if hasattr(module, "begin_block"))
END_BLOCK = tuple((module.STORE, module.end_block) for module in MODULES if hasattr(module, "end_block"))

GENUTIL = "genutil"  # the gen_txs of genesis: a section of no store, as in the SDK
SIMULATE_PATH = "/cosmos.tx.v1beta1.Service/Simulate"
QUERY_GAS_LIMIT = 50_000_000
DECODED_CACHE_SIZE = 20_000
INTERNAL_ERROR_CODE = 1
UNDEFINED_CODESPACE = "undefined"


def compute_default_genesis(**sections: dict) -> dict:
    """An app_state with a section per module (an empty one takes the module's defaults), `sections` over it."""
    return {store: sections.get(store, {}) for store in STORES}


class App:
    def __init__(self, data_dir: str, keep_recent: int = 100, heat_sensor=None, verifier=None, signature_helper=None,
                 snapshots=None, minimum_gas_price: Fraction | None = None):
        """What the node gives the app: `heat_sensor() -> heat.HeatReading | None`, its thermometer, read
        in ExtendVote; `verifier`, its proof verifier (chain.inference.ProofVerifier); `signature_helper`,
        a process that verifies a block's unseen signatures ahead of it (node.sighelper); `snapshots`, its
        state-sync snapshots (node.snapshots); `minimum_gas_price`, the node's own floor (ujoule per gas)
        for the fees of the txs its CheckTx admits, as app.toml's minimum-gas-prices in the SDK."""
        self.heat_sensor = heat_sensor
        self.minimum_gas_price = minimum_gas_price
        self.verifier = verifier
        self.snapshots = snapshots
        self.store = Store(f"{data_dir}/application.db", STORES, keep_recent)
        self.signatures = SignatureCache(helper=signature_helper)
        self.decoded: OrderedDict[bytes, DecodedTx | TxError] = OrderedDict()
        self.genesis: Branch | None = None
        self.finalized: Branch | None = None
        self.check_state = Branch(self.store)
        self.check_budget = Budget()
        # CheckTx and Simulate run at the last committed block's time, as the SDK's check state carries its
        # header (zero after a restart until the next commit, as in the SDK)
        self.check_time_ns = self.finalized_time_ns = 0
        self.validators_changed = False
        self.load_parameters(self.store)

    def load_parameters(self, view) -> None:
        """What every tx and proposal needs, read once from the committed (or genesis) state."""
        state = State(view, GasMeter(), GasParams(), auth.STORE)
        self.chain_id = auth.get_chain_id(state)
        self.tx_params, self.gas_params = auth.get_params(state)
        self.validator_keys = heat.get_validator_keys(state)

    def close(self) -> None:
        for service in (self.verifier, self.signatures.helper):
            if service is not None:
                service.close()
        self.store.close()

    def state(self, view, meter: GasMeter, store: str) -> State:
        return State(view, meter, self.gas_params, store)

    def context(self, height: int, time_ns: int, **facts) -> Context:
        return Context(self.chain_id, height, time_ns, verifier=self.verifier, **facts)

    # --- connection: info / init -----------------------------------------------------------

    def info(self, request: abci.RequestInfo) -> abci.ResponseInfo:
        return abci.ResponseInfo(
            data=APP_NAME,
            version=SOFTWARE_VERSION,
            app_version=APP_VERSION,
            last_block_height=self.store.height,
            last_block_app_hash=self.store.app_hash,
        )

    def init_chain(self, request: abci.RequestInitChain) -> abci.ResponseInitChain:
        """Writes the genesis state, module by module in registry order; it is committed together
        with the first block."""
        try:
            app_state = json.loads(request.app_state_bytes or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            raise GenesisError(f"genesis app_state is not valid JSON: {error}") from None
        if not isinstance(app_state, dict):
            raise GenesisError("genesis app_state must be a JSON object")
        unknown = sorted(set(app_state) - set(STORES) - {GENUTIL})
        if unknown:
            raise GenesisError(f"genesis app_state has sections for no module: {', '.join(unknown)}")
        self.store.discard()
        self.genesis = Branch(self.store)
        self.chain_id = request.chain_id
        time_ns = request.time.seconds * 1_000_000_000 + request.time.nanos
        validators = tuple(v.pub_key.ed25519 for v in request.validators if v.pub_key.ed25519)
        ctx = self.context(max(request.initial_height, 1), time_ns, validators=validators)
        meter = GasMeter()
        try:
            gen_txs = staking.compute_gen_txs(app_state.get(GENUTIL, {}))
            for store, init_chain, _ in GENESIS:
                init_chain(self.state(self.genesis, meter, store), app_state.get(store, {}), ctx)
            self.load_parameters(self.genesis)
            self.deliver_gen_txs(ctx, gen_txs)
            validators = staking.process_genesis_validator_set(self.genesis, ctx)
        except GenesisError as error:
            self.genesis = None
            raise GenesisError(f"invalid genesis: {error}") from error
        self.load_parameters(self.genesis)
        app_hash = self.store.stage(max(request.initial_height - 1, 0), self.genesis.changes())
        return abci.ResponseInitChain(app_hash=app_hash, validators=validators)

    def deliver_gen_txs(self, ctx: Context, txs: list[bytes]) -> None:
        """Each gen_tx (one MsgCreateValidator, signed) runs as a tx of the first block would: ante, then
        its message; one that fails fails genesis."""
        for index, tx in enumerate(txs):
            result = abci.ExecTxResult()
            self.execute_tx(self.genesis, self.context(ctx.height, ctx.time_ns), tx, result)
            if result.code:
                raise GenesisError(f"genutil gen_txs[{index}] failed with code {result.code} "
                                   f"({result.codespace}): {result.log}")
            staking.check_gen_tx(index, self.decode(tx).type_urls)

    def export_genesis(self) -> dict:
        meter = GasMeter()
        return {store: export(self.state(self.store, meter, store)) for store, _, export in GENESIS}

    # --- consensus: a block ----------------------------------------------------------------

    def prepare_proposal(self, request: abci.RequestPrepareProposal) -> abci.ResponsePrepareProposal:
        """The heat of the last commit's votes goes first, as a heat tx; then mempool txs that fit, in
        bytes and in the block's proof budget (a tx whose proofs would exceed it waits for a later block)."""
        heat_tx = heat.compute_heat_tx(request.local_last_commit)
        txs = [heat_tx] if heat_tx else []
        size = sum(map(len, txs))
        proofs, budget = 0, inference.get_params(self.genesis or self.store).max_proofs_per_block
        for tx in request.txs:
            size += len(tx)
            if size > request.max_tx_bytes:
                break
            tx_proofs = self.compute_proof_count(tx)
            if proofs + tx_proofs > budget:
                size -= len(tx)
                continue
            proofs += tx_proofs
            txs.append(tx)
        return abci.ResponsePrepareProposal(txs=txs)

    def process_proposal(self, request: abci.RequestProcessProposal) -> abci.ResponseProcessProposal:
        """Rejects a heat tx out of place, or one that is not the signed extended form of the last commit;
        and a block carrying more proofs than the per-block budget, so that a proposer that skips
        CheckTx cannot make validators run unbounded EZKL verifications."""
        reject = abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.REJECT)
        proofs = 0
        for index, tx in enumerate(request.txs):
            if not heat.is_heat_tx(tx):
                proofs += self.compute_proof_count(tx)
                continue
            try:
                if index:
                    raise heat.MalformedHeatTx("a heat tx must come first")
                heat.check_heat_tx(tx, request.proposed_last_commit, chain_id=self.chain_id, height=request.height - 1,
                                   validator_keys=self.validator_keys)
            except heat.HeatError:
                return reject
        if proofs > inference.get_params(self.genesis or self.store).max_proofs_per_block:
            return reject
        return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.ACCEPT)

    def compute_proof_count(self, tx: bytes) -> int:
        """The proofs a tx asks the block to verify (none for a tx that does not decode: it fails cheaply)."""
        try:
            return inference.compute_proof_count(self.decode(tx).type_urls)
        except TxError:
            return 0

    def extend_vote(self, request: abci.RequestExtendVote) -> abci.ResponseExtendVote:
        reading = self.heat_sensor() if self.heat_sensor else None
        return abci.ResponseExtendVote(vote_extension=heat.compute_vote_extension(reading) if reading else b"")

    def verify_vote_extension(self, request: abci.RequestVerifyVoteExtension) -> abci.ResponseVerifyVoteExtension:
        try:
            heat.check_vote_extension(request.vote_extension)
        except heat.HeatError:
            return abci.ResponseVerifyVoteExtension(status=abci.ResponseVerifyVoteExtension.REJECT)
        return abci.ResponseVerifyVoteExtension(status=abci.ResponseVerifyVoteExtension.ACCEPT)

    def finalize_block(self, request: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        block = Branch(self.genesis or self.store)
        response = abci.ResponseFinalizeBlock()
        time_ns = request.time.seconds * 1_000_000_000 + request.time.nanos
        self.prefetch_signatures(block, request.txs)
        budget = Budget(in_block=True)
        hooks = self.context(request.height, time_ns, txs=tuple(request.txs), budget=budget,
                             votes=tuple(request.decided_last_commit.votes), misbehavior=tuple(request.misbehavior),
                             proposer_address=request.proposer_address,
                             next_validators_hash=request.next_validators_hash, block_hash=request.hash)
        run_hooks(BEGIN_BLOCK, self, block, hooks)
        for index, tx in enumerate(request.txs):
            result = response.tx_results.add()
            if index == 0 and heat.is_heat_tx(tx):
                continue  # its readings were applied by heat's begin_block; its events are the block's
            self.execute_tx(block, self.context(request.height, time_ns, budget=budget, block_hash=request.hash), tx,
                            result)
        run_hooks(END_BLOCK, self, block, hooks)
        response.validator_updates.extend(hooks.validator_updates)
        self.validators_changed = bool(hooks.validator_updates)
        write_events(response, hooks.events)
        response.app_hash = self.store.stage(request.height, block.changes())
        self.finalized, self.finalized_time_ns = block, time_ns
        return response

    def prefetch_signatures(self, block: Branch, txs) -> None:
        """Hands the signature helper the signatures of the txs this node has not seen.

        A tx decoded before went through CheckTx, which cached its signature; looking that up here
        too cost 5 µs a tx (its account read and key), and a miss is only verified inline.
        """
        helper = self.signatures.helper
        if helper is not None and helper.is_worth(len(txs)):
            helper.verify_ahead(self.compute_unseen_signatures(block, txs), self.signatures)

    def compute_unseen_signatures(self, block: Branch, txs):
        """(key, public key, signature, sign bytes) of each tx neither decoded nor verified before."""
        state = self.state(block, GasMeter(), auth.STORE)
        for tx in txs:
            if tx in self.decoded:
                continue
            try:
                decoded = self.decode(tx)
            except TxError:
                continue
            account = auth.get_account(state, decoded.signer)
            public_key = decoded.public_key or (account and auth.get_public_key(account))
            if account is None or public_key is None:
                continue
            key = compute_signature_key(public_key, decoded, self.chain_id, account.account_number)
            if key not in self.signatures.entries:
                yield key, public_key, decoded.signature, decoded.sign_bytes(self.chain_id, account.account_number)

    def commit(self, request: abci.RequestCommit | None = None) -> abci.ResponseCommit:
        self.store.commit()
        if self.snapshots:
            self.snapshots.process_commit(self.store)
        if self.validators_changed:
            self.validator_keys = heat.get_validator_keys(self.store)
            self.validators_changed = False
        # What outlives a block (tree nodes, caches) is long-lived: taking it out of the collector's
        # view keeps each full collection from walking millions of objects (200 ms in a 10k-tx block).
        gc.freeze()
        self.genesis = None
        self.finalized = None
        self.check_state = Branch(self.store)
        self.check_budget = Budget()
        self.check_time_ns = self.finalized_time_ns
        return abci.ResponseCommit()

    # --- transactions ----------------------------------------------------------------------

    def decode(self, tx: bytes) -> DecodedTx:
        """Stateless checks, cached by tx bytes so CheckTx and FinalizeBlock decode once."""
        key = bytes(tx)
        cached = self.decoded.get(key)
        if cached is None:
            try:
                cached = decode_tx(key, HANDLERS, self.tx_params)
            except TxError as error:
                cached = error.with_traceback(None)
            self.decoded[key] = cached
            if len(self.decoded) > DECODED_CACHE_SIZE:
                self.decoded.popitem(last=False)
        if isinstance(cached, TxError):
            raise cached.with_traceback(None)  # a raise adds its frames to the traceback: start from none
        return cached

    def execute_tx(self, parent: Branch, ctx: Context, tx_bytes: bytes, result, decoded: DecodedTx | None = None,
                   simulate: bool = False, keep_fee_on_failure: bool = True) -> None:
        """Ante, then messages, in `parent` between savepoints; fills `result` (ExecTxResult or ResponseCheckTx).

        In a block a message failure keeps the ante's writes (the fee is spent, the sequence used), as
        in the Cosmos SDK; CheckTx passes keep_fee_on_failure=False so a rejected tx leaves no trace.
        The events emitted by what is kept go into `result` at the end.
        """
        meter = GasMeter(MAX_GAS_LIMIT)
        before_ante = parent.savepoint()
        fee_spent = False
        try:
            tx = decoded or self.decode(tx_bytes)
            meter.limit = tx.gas_limit
            process_ante(self.state(parent, meter, auth.STORE), ctx, tx, self.tx_params, self.signatures, simulate)
            ante_events = len(ctx.events)
            before_messages = parent.savepoint()
            signer = crypto.encode_address(tx.signer)
            responses = []
            try:
                for index, (url, message) in enumerate(zip(tx.type_urls, tx.messages)):
                    store = MODULE_OF[url]
                    ctx.emit("message", ("action", url), ("sender", signer), ("module", store), ("msg_index", str(index)))
                    state = self.state(parent, meter, store)
                    responses.append(pack_any(HANDLERS[url].check_and_execute(state, ctx, message)))
            except TxError:
                del ctx.events[ante_events:]
                parent.rollback(before_messages)
                fee_spent = keep_fee_on_failure
                raise
        except TxError as error:
            if not fee_spent:
                del ctx.events[:]
                parent.rollback(before_ante)
            parent.release(before_ante)
            result.code, result.codespace, result.log = error.code, error.codespace, str(error)
            result.gas_wanted = 0 if meter.limit == MAX_GAS_LIMIT else meter.limit
            result.gas_used = meter.consumed
            write_events(result, ctx.events)
            return
        except inference.VerifierFault:
            parent.rollback(before_ante)
            parent.release(before_ante)
            raise
        except Exception as error:  # a bug must fail the tx, never the node; same input fails the same way
            parent.rollback(before_ante)
            parent.release(before_ante)
            result.code, result.codespace, result.log = INTERNAL_ERROR_CODE, UNDEFINED_CODESPACE, f"internal error: {type(error).__name__}"
            return
        parent.release(before_ante)
        result.data = sdk_abci.TxMsgData(msg_responses=responses).SerializeToString()
        result.gas_wanted, result.gas_used = tx.gas_limit, meter.consumed
        write_events(result, ctx.events)

    def check_tx(self, request: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        response = abci.ResponseCheckTx()
        try:
            self.check_node_fee(request.tx)
        except TxError as error:
            self.decoded.pop(bytes(request.tx), None)
            response.code, response.codespace, response.log = error.code, error.codespace, str(error)
            return response
        self.execute_tx(self.check_state, self.context(self.store.height + 1, self.check_time_ns, budget=self.check_budget), request.tx,
                        response, keep_fee_on_failure=False)
        if response.code:
            self.decoded.pop(bytes(request.tx), None)  # a rejected tx is not in our mempool: keep no copy of it
        return response

    def check_node_fee(self, tx_bytes: bytes) -> None:
        """The node's own fee floor; blocks are judged by the chain's (auth Params), never by this."""
        if self.minimum_gas_price is None:
            return
        tx = self.decode(tx_bytes)
        required = compute_gas_cost(tx.gas_limit, self.minimum_gas_price.numerator, self.minimum_gas_price.denominator)
        if tx.fee < required:
            raise InsufficientFeeError(f"insufficient fee; got: {tx.fee}{DENOM} required: {required}{DENOM} "
                                       "(this node's minimum gas price)")

    # --- queries ---------------------------------------------------------------------------

    def query(self, request: abci.RequestQuery) -> abci.ResponseQuery:
        height = request.height or self.store.height
        try:
            if request.path.startswith("store/"):
                return self.query_store(request, height)
            if request.path == SIMULATE_PATH:
                return abci.ResponseQuery(value=self.simulate(request.data).SerializeToString(), height=height)
            route = QUERIES.get(request.path)
            if route is None:
                raise UnknownRequestError(f"unknown query path {request.path!r}")
            request_class, handler = route
            try:
                message = request_class.FromString(request.data)
            except Exception:
                raise InvalidRequestError(f"invalid request data for {request.path}") from None
            state = self.state(self.view_at(height), GasMeter(QUERY_GAS_LIMIT), QUERY_STORE[request.path])
            return abci.ResponseQuery(value=handler(state, message).SerializeToString(), height=height)
        except TxError as error:
            return abci.ResponseQuery(code=error.code, codespace=error.codespace, log=str(error), height=height)
        except StoreError as error:
            return abci.ResponseQuery(code=InvalidRequestError.code, codespace="sdk", log=str(error), height=height)

    def view_at(self, height: int):
        return self.store if height == self.store.height else HeightView(self.store, height)

    def query_store(self, request: abci.RequestQuery, height: int) -> abci.ResponseQuery:
        parts = request.path.split("/")
        if len(parts) != 3 or parts[2] != "key" or parts[1] not in STORES:
            raise UnknownRequestError(f"unknown store query {request.path!r}: use store/<{'|'.join(STORES)}>/key")
        name, key = parts[1], request.data
        if not request.prove:
            value = self.view_at(height).get(name, key)
            return abci.ResponseQuery(key=key, value=value or b"", height=height)
        value, (inner, outer) = self.store.prove(name, key, height)
        ops = proof_pb2.ProofOps(
            ops=[
                proof_pb2.ProofOp(type="ics23:smt", key=key, data=inner.SerializeToString()),
                proof_pb2.ProofOp(type="ics23:simple", key=name.encode(), data=outer.SerializeToString()),
            ]
        )
        return abci.ResponseQuery(key=key, value=value or b"", proof_ops=ops, height=height)

    def simulate(self, data: bytes) -> service_pb2.SimulateResponse:
        try:
            request = service_pb2.SimulateRequest.FromString(data)
        except Exception:
            raise InvalidRequestError("invalid SimulateRequest") from None
        tx_bytes = request.tx_bytes or request.tx.SerializeToString()
        tx = decode_tx(tx_bytes, HANDLERS, self.tx_params, simulate=True)
        result = abci.ExecTxResult()
        self.execute_tx(Branch(self.check_state), self.context(self.store.height + 1, self.check_time_ns), tx_bytes, result,
                        decoded=tx, simulate=True)
        if result.code:
            error = TxError(result.log)
            error.code, error.codespace = result.code, result.codespace
            raise error
        return service_pb2.SimulateResponse(
            gas_info={"gas_wanted": result.gas_wanted, "gas_used": result.gas_used},
            result={"events": result.events, "msg_responses": sdk_abci.TxMsgData.FromString(result.data).msg_responses},
        )

    # --- state sync: the node's snapshots (node.snapshots), when it keeps any ---------------

    def list_snapshots(self, request: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:
        return self.snapshots.list_snapshots(request) if self.snapshots else abci.ResponseListSnapshots()

    def offer_snapshot(self, request: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:
        if self.snapshots is None:
            return abci.ResponseOfferSnapshot(result=abci.ResponseOfferSnapshot.REJECT)
        return self.snapshots.offer_snapshot(self.store, request)

    def load_snapshot_chunk(self, request: abci.RequestLoadSnapshotChunk) -> abci.ResponseLoadSnapshotChunk:
        return self.snapshots.load_snapshot_chunk(request) if self.snapshots else abci.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(self, request: abci.RequestApplySnapshotChunk) -> abci.ResponseApplySnapshotChunk:
        if self.snapshots is None:
            return abci.ResponseApplySnapshotChunk(result=abci.ResponseApplySnapshotChunk.ABORT)
        response = self.snapshots.apply_snapshot_chunk(self.store, request)
        if self.store.height:  # restored: what every tx needs is read from the new state
            self.load_parameters(self.store)
            self.check_state = Branch(self.store)
        return response


def run_hooks(hooks, app: App, block: Branch, ctx: Context) -> None:
    """Each begin_block or end_block hook, in registry order, on a State of its module's store."""
    meter = GasMeter()
    for store, hook in hooks:
        hook(app.state(block, meter, store), ctx)


class HeightView:
    """Reads at a retained past height, through the tree of that height."""

    def __init__(self, store: Store, height: int):
        self.store = store
        self.height = height

    def get(self, name: str, key: bytes) -> bytes | None:
        return self.store.get_at(name, key, self.height)

    def iterate(self, name: str, start=None, end=None, reverse=False):
        raise InvalidRequestError(f"listing queries are answered at the latest height only, not at {self.height}")
