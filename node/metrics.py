"""Prometheus metrics of a node and its worker (prometheus-client), served at `/metrics` on the REST port.

`InstrumentedApp` wraps the app a node runs — the dev chain's, or the one `maxwell start` serves to
CometBFT — and reads each block from what FinalizeBlock answers: height, time, txs, gas, clearings,
heat readings, proofs verified and rejected; it times FinalizeBlock, Commit and each proof
verification, and counts CheckTx refusals by code. The worker counts its proofs, their time and its
earnings. Metrics are the process's own (the default registry), as each node runs in a process of its own.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

INFERENCE_CODESPACE = "inference"
MILLI = 1000
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BLOCK_HEIGHT = Gauge("maxwell_block_height", "Height of the latest block")
BLOCK_TIME = Gauge("maxwell_block_time_seconds", "Time of the latest block (Unix seconds)")
BLOCK_TXS = Gauge("maxwell_block_txs", "Transactions in the latest block")
BLOCK_GAS = Gauge("maxwell_block_gas_used", "Gas used by the latest block's transactions")
TXS = Counter("maxwell_txs", "Transactions in blocks")
MEMPOOL_SIZE = Gauge("maxwell_mempool_size", "Transactions waiting in the dev chain's mempool")
CHECK_TX_REJECTED = Counter("maxwell_check_tx_rejected", "Transactions CheckTx refused", ["codespace", "code"])
FINALIZE_SECONDS = Histogram("maxwell_finalize_block_seconds", "FinalizeBlock latency", buckets=LATENCY_BUCKETS)
COMMIT_SECONDS = Histogram("maxwell_commit_seconds", "Commit latency", buckets=LATENCY_BUCKETS)
PROOFS_VERIFIED = Counter("maxwell_proofs_verified", "Layer proofs accepted in blocks")
PROOFS_REJECTED = Counter("maxwell_proofs_rejected", "Inference transactions refused in blocks")
VERIFY_SECONDS = Histogram("maxwell_proof_verify_seconds", "Time of one EZKL proof verification",
                           buckets=LATENCY_BUCKETS)
CLEARING_PRICE = Gauge("maxwell_clearing_price_ujoule", "Last clearing price per slot", ["work"])
MATCHED_SLOTS = Gauge("maxwell_matched_slots", "Slots matched at the last clearing", ["work"])
PROVIDER_TEMPERATURE = Gauge("maxwell_provider_temperature_celsius", "Last reported temperature", ["provider"])
WORKER_PROOFS = Counter("maxwell_worker_proofs", "Layer proofs this worker made")
WORKER_LAYER_SECONDS = Histogram("maxwell_worker_layer_seconds", "Time to prove one layer",
                                 buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300))
WORKER_EARNINGS = Counter("maxwell_worker_earnings_ujoule", "What this worker's verified proofs were paid")


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


def get_attributes(event) -> dict[str, str]:
    return {a.key: a.value for a in event.attributes}


def record_block(request, response) -> None:
    BLOCK_HEIGHT.set(request.height)
    BLOCK_TIME.set(request.time.seconds + request.time.nanos / 1e9)
    BLOCK_TXS.set(len(request.txs))
    TXS.inc(len(request.txs))
    BLOCK_GAS.set(sum(result.gas_used for result in response.tx_results))
    events = [*response.events, *(e for result in response.tx_results for e in result.events)]
    for event in events:
        attributes = get_attributes(event)
        if event.type == "auction_cleared":
            CLEARING_PRICE.labels(attributes["work"]).set(int(attributes["price"]))
            MATCHED_SLOTS.labels(attributes["work"]).set(int(attributes["matched_slots"]))
        elif event.type == "heat_reported":
            PROVIDER_TEMPERATURE.labels(attributes["provider"]).set(int(attributes["temperature_millicelsius"]) / MILLI)
        elif event.type == "inference_verified":
            PROOFS_VERIFIED.inc()
    PROOFS_REJECTED.inc(sum(1 for result in response.tx_results
                            if result.code and result.codespace == INFERENCE_CODESPACE))


class TimedVerifier:
    """The app's proof verifier, each verification timed."""

    def __init__(self, verifier):
        self.verifier = verifier

    def __getattr__(self, name):
        return getattr(self.verifier, name)

    def verify(self, *args, **kwargs):
        with VERIFY_SECONDS.time():
            return self.verifier.verify(*args, **kwargs)


class InstrumentedApp:
    """The app, measured: the ABCI calls a block makes, and CheckTx's refusals."""

    def __init__(self, app):
        self.app = app
        if getattr(app, "verifier", None) is not None:
            app.verifier = TimedVerifier(app.verifier)

    def __getattr__(self, name):
        return getattr(self.app, name)

    def finalize_block(self, request):
        started = time.perf_counter()
        response = self.app.finalize_block(request)
        FINALIZE_SECONDS.observe(time.perf_counter() - started)
        record_block(request, response)
        return response

    def commit(self, *args):
        with COMMIT_SECONDS.time():
            return self.app.commit(*args)

    def check_tx(self, request):
        response = self.app.check_tx(request)
        if response.code:
            CHECK_TX_REJECTED.labels(response.codespace, str(response.code)).inc()
        return response
