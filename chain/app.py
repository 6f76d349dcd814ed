"""The maxwell application: ABCI 2.0 calls in, deterministic state transitions out.

Read top-down: a block arrives in `finalize_block` → the heat tx the proposer injected (if any) →
`deliver_tx` for each transaction (ante, then messages) → `end_block` (the market clears, charges
rent, kills what cannot pay; expired inference requests are refunded) → the app hash of the staged
writes. `commit`
persists the block in one synced batch. CheckTx runs the same `execute_tx` on a check state that
is reset to the committed state after every commit.
"""

import gc
import json
import os
from collections import OrderedDict

from chain import auth, bank, crypto, heat, inference, market
from chain.ante import PREFETCH_SEND, SignatureCache, compute_signature_key, process_ante
from chain.errors import InvalidRequestError, TxError, UnknownRequestError
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci
from chain.proto.cosmos.tx.v1beta1 import service_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.crypto import proof_pb2
from chain.state import Context, GasMeter, State, write_events
from chain.store import Branch, Store, StoreError
from chain.tx import DecodedTx, MAX_GAS_LIMIT, decode_tx, pack_any

APP_NAME = "maxwell"
APP_VERSION = 1
SOFTWARE_VERSION = "0.1.0"
STORES = (auth.STORE, bank.STORE, inference.STORE, market.STORE)
HANDLERS = {**bank.MESSAGES, **market.MESSAGES, **inference.MESSAGES}
QUERIES = {**auth.QUERIES, **bank.QUERIES, **market.QUERIES, **inference.QUERIES}
QUERY_PATHS = {request_class: path for path, (request_class, _) in QUERIES.items()}
MODULE_OF = {url: url.split(".")[1] for url in HANDLERS}
SIMULATE_PATH = "/cosmos.tx.v1beta1.Service/Simulate"
QUERY_GAS_LIMIT = 50_000_000
DECODED_CACHE_SIZE = 20_000
INTERNAL_ERROR_CODE = 1
UNDEFINED_CODESPACE = "undefined"


class GenesisError(ValueError):
    pass


class App:
    def __init__(self, data_dir: str, keep_recent: int = 100, heat_sensor=None):
        """`heat_sensor() -> heat.HeatReading | None` is the node's own thermometer, read in ExtendVote."""
        os.makedirs(data_dir, exist_ok=True)
        self.heat_sensor = heat_sensor
        self.store = Store(os.path.join(data_dir, "application.db"), STORES, keep_recent)
        self.signatures = SignatureCache()
        self.decoded: OrderedDict[bytes, DecodedTx | TxError] = OrderedDict()
        self.genesis: Branch | None = None
        self.finalized: Branch | None = None
        self.check_state = Branch(self.store)
        self.chain_id = auth.get_chain_id(self.store)
        self.tx_params, self.gas_params = auth.get_params(self.store)
        self.validator_keys = market.get_validator_keys(self.store)
        inference.open_verifier(data_dir)

    def close(self) -> None:
        inference.close_verifier()
        self.signatures.close()
        self.store.close()

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
        """Writes the genesis state; it is committed together with the first block."""
        try:
            app_state = json.loads(request.app_state_bytes or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            raise GenesisError(f"genesis app_state is not valid JSON: {error}") from None
        if not isinstance(app_state, dict):
            raise GenesisError("genesis app_state must be a JSON object")
        self.store.discard()
        self.genesis = Branch(self.store)
        state = State(self.genesis, GasMeter(), self.gas_params)
        try:
            self.tx_params, self.gas_params = auth.init_chain(state, app_state.get("auth", {}), request.chain_id)
            bank.init_chain(state, app_state.get("bank", {}))
            market.init_chain(state, app_state.get("market", {}))
            market.init_validators(state, [v.pub_key.ed25519 for v in request.validators if v.pub_key.ed25519])
            inference.init_chain(state, app_state.get("inference", {}))
        except (auth.GenesisError, bank.GenesisError, market.GenesisError, inference.GenesisError) as error:
            self.genesis = None
            raise GenesisError(f"invalid genesis: {error}") from error
        self.chain_id = request.chain_id
        self.validator_keys = market.get_validator_keys(self.genesis)
        app_hash = self.store.stage(max(request.initial_height - 1, 0), self.genesis.changes())
        return abci.ResponseInitChain(app_hash=app_hash)

    def export_genesis(self) -> dict:
        return {
            "auth": auth.export_genesis(self.store),
            "bank": bank.export_genesis(self.store),
            "market": market.export_genesis(self.store),
            "inference": inference.export_genesis(self.store),
        }

    # --- consensus: a block ----------------------------------------------------------------

    def prepare_proposal(self, request: abci.RequestPrepareProposal) -> abci.ResponsePrepareProposal:
        """The heat of the last commit's votes goes first, as a heat tx; then mempool txs that fit."""
        heat_tx = heat.compute_heat_tx(request.local_last_commit)
        txs = [heat_tx] if heat_tx else []
        size = sum(map(len, txs))
        for tx in request.txs:
            size += len(tx)
            if size > request.max_tx_bytes:
                break
            txs.append(tx)
        return abci.ResponsePrepareProposal(txs=txs)

    def process_proposal(self, request: abci.RequestProcessProposal) -> abci.ResponseProcessProposal:
        """Rejects a heat tx out of place, or one that is not the signed extended form of the last commit."""
        for index, tx in enumerate(request.txs):
            if not heat.is_heat_tx(tx):
                continue
            try:
                if index:
                    raise heat.MalformedHeatTx("a heat tx must come first")
                heat.check_heat_tx(tx, request.proposed_last_commit, chain_id=self.chain_id, height=request.height - 1,
                                   validator_keys=self.validator_keys)
            except heat.HeatError:
                return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.REJECT)
        return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.ACCEPT)

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
        for index, tx in enumerate(request.txs):
            ctx = Context(self.chain_id, request.height, time_ns)
            if index == 0 and heat.is_heat_tx(tx):
                self.deliver_heat_tx(block, ctx, tx, response.tx_results.add())
            else:
                self.deliver_tx(block, ctx, tx, response.tx_results.add())
        ctx = Context(self.chain_id, request.height, time_ns)
        end_block(State(block, GasMeter(), self.gas_params), ctx)
        write_events(response, ctx.events)
        response.app_hash = self.store.stage(request.height, block.changes())
        self.finalized = block
        return response

    def prefetch_signatures(self, block: Branch, txs) -> None:
        """Starts verifying, in a helper process, the signatures of the txs this node has not seen,
        sending them a few at a time so the helper starts on the first while the rest are decoded.

        A tx decoded before went through CheckTx, which cached its signature; looking that up here
        too cost 5 µs a tx (its account read and key), and a miss is only verified inline.
        """
        if not self.signatures.is_prefetching(len(txs)):
            return
        self.signatures.start()
        items = []
        for tx in txs:
            if tx in self.decoded:
                continue
            try:
                decoded = self.decode(tx)
            except TxError:
                continue
            account = auth.get_account(block, decoded.signer)
            public_key = decoded.public_key or (account and auth.get_public_key(account))
            if account is None or public_key is None:
                continue
            key = compute_signature_key(public_key, decoded, self.chain_id, account.account_number)
            if key not in self.signatures.entries:
                items.append((key, public_key, decoded.signature, decoded.sign_bytes(self.chain_id, account.account_number)))
                if len(items) == PREFETCH_SEND:
                    self.signatures.prefetch(items)
                    items = []
        self.signatures.prefetch(items)

    def deliver_heat_tx(self, block: Branch, ctx: Context, tx: bytes, result: abci.ExecTxResult) -> None:
        """The proposer's heat tx: validators' readings, checked in ProcessProposal; no fee, no signer."""
        branch = Branch(block)
        try:
            market.process_heat_tx(State(branch, GasMeter(), self.gas_params), ctx, tx)
        except heat.HeatError as error:
            result.code, result.codespace, result.log = 1, market.CODESPACE, str(error)
            return
        branch.write()
        write_events(result, ctx.events)

    def deliver_tx(self, block: Branch, ctx: Context, tx: bytes, result: abci.ExecTxResult) -> None:
        self.execute_tx(block, ctx, tx, result)

    def commit(self, request: abci.RequestCommit | None = None) -> abci.ResponseCommit:
        self.store.commit()
        # What outlives a block (tree nodes, caches) is long-lived: taking it out of the collector's
        # view keeps each full collection from walking millions of objects (200 ms in a 10k-tx block).
        gc.freeze()
        self.genesis = None
        self.finalized = None
        self.check_state = Branch(self.store)
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
                cached = error
            self.decoded[key] = cached
            if len(self.decoded) > DECODED_CACHE_SIZE:
                self.decoded.popitem(last=False)
        if isinstance(cached, TxError):
            raise cached
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
            state = State(parent, meter, self.gas_params)
            process_ante(state, ctx, tx, self.tx_params, self.signatures, simulate)
            ante_events = len(ctx.events)
            before_messages = parent.savepoint()
            signer = crypto.encode_address(tx.signer)
            responses = []
            try:
                for index, (url, message) in enumerate(zip(tx.type_urls, tx.messages)):
                    ctx.emit("message", ("action", url), ("sender", signer), ("module", MODULE_OF[url]), ("msg_index", str(index)))
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
        ctx = Context(self.chain_id, self.store.height + 1, 0)
        self.execute_tx(self.check_state, ctx, request.tx, response, keep_fee_on_failure=False)
        return response

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
            state = State(self.view_at(height), GasMeter(QUERY_GAS_LIMIT), self.gas_params)
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
        self.execute_tx(Branch(self.check_state), Context(self.chain_id, self.store.height + 1, 0), tx_bytes, result,
                        decoded=tx, simulate=True)
        if result.code:
            error = TxError(result.log)
            error.code, error.codespace = result.code, result.codespace
            raise error
        return service_pb2.SimulateResponse(
            gas_info={"gas_wanted": result.gas_wanted, "gas_used": result.gas_used},
            result={"events": result.events, "msg_responses": sdk_abci.TxMsgData.FromString(result.data).msg_responses},
        )

    # --- state sync: not offered -----------------------------------------------------------

    def list_snapshots(self, request: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:
        return abci.ResponseListSnapshots()

    def offer_snapshot(self, request: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:
        return abci.ResponseOfferSnapshot(result=abci.ResponseOfferSnapshot.REJECT)

    def load_snapshot_chunk(self, request: abci.RequestLoadSnapshotChunk) -> abci.ResponseLoadSnapshotChunk:
        return abci.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(self, request: abci.RequestApplySnapshotChunk) -> abci.ResponseApplySnapshotChunk:
        return abci.ResponseApplySnapshotChunk(result=abci.ResponseApplySnapshotChunk.ABORT)


def end_block(state: State, ctx: Context) -> None:
    market.end_block(state, ctx)
    inference.end_block(state, ctx)


class HeightView:
    """Reads at a retained past height, through the tree of that height."""

    def __init__(self, store: Store, height: int):
        self.store = store
        self.height = height

    def get(self, name: str, key: bytes) -> bytes | None:
        return self.store.get_at(name, key, self.height)

    def iterate(self, name: str, start=None, end=None, reverse=False):
        raise InvalidRequestError(f"listing queries are answered at the latest height only, not at {self.height}")
