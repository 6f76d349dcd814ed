"""Chain side: verify untrusted proofs in an isolated process, with a timeout and a result cache.

EZKL reports a bad proof by raising, and on some malformed inputs by panicking with
`pyo3_runtime.PanicException`, which is a BaseException; a native crash would take the whole
process with it. So `ezkl.verify` only ever runs in a separate (spawned) process that is
replaced whenever it dies or overruns its time limit, and every outcome is a `VerifyResult`.
Results are cached by (vk sha256, proof sha256) so CheckTx and FinalizeBlock verify a proof once.
"""

import hashlib
import json
import multiprocessing
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import ezkl

from zk.artifacts import Circuit
from zk.instances import FELT_BYTES, HEADER_BYTES, InstanceError, PublicInstances, decode_instances, decode_proof, felt_to_hex

MAX_PROOF_BYTES = 64 * 1024
DEFAULT_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 120.0
CACHE_ENTRIES = 4096
READY = "ready"


class VerifierUnavailable(Exception):
    pass


@dataclass(frozen=True)
class VerifyResult:
    instances: PublicInstances | None
    reason: str | None

    @property
    def is_valid(self) -> bool:
        return self.reason is None


def is_ezkl_failure(error: BaseException) -> bool:
    """EZKL fails with exceptions, or with a pyo3 PanicException that is only a BaseException."""
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"


def _reject(reason: str) -> VerifyResult:
    return VerifyResult(instances=None, reason=reason)


class Verifier:
    """Verifies proofs against registered circuits; never raises, never runs EZKL in-process."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, cache_entries: int = CACHE_ENTRIES):
        self.timeout = timeout
        self.cache_entries = cache_entries
        self.ezkl_calls = 0
        self._cache: OrderedDict[tuple[str, str], VerifyResult] = OrderedDict()
        self._lock = threading.Lock()
        self._process = None
        self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        with self._lock:
            self._stop_worker()

    def verify(self, circuit: Circuit, proof: bytes) -> VerifyResult:
        try:
            return self._verify(circuit, proof)
        except Exception as e:
            return _reject(f"verifier error: {e!r}")

    def _verify(self, circuit: Circuit, proof: bytes) -> VerifyResult:
        if not isinstance(proof, (bytes, bytearray, memoryview)):
            return _reject(f"proof must be bytes, not {type(proof).__name__}")
        proof = bytes(proof)
        if len(proof) > MAX_PROOF_BYTES:
            return _reject(f"proof has {len(proof)} bytes, more than the limit of {MAX_PROOF_BYTES}")
        key = (circuit.vk_sha256, hashlib.sha256(proof).hexdigest())
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            result, cacheable = self._check(circuit, proof)
            if cacheable:
                self._cache[key] = result
                if len(self._cache) > self.cache_entries:
                    self._cache.popitem(last=False)
            return result

    def _check(self, circuit: Circuit, proof: bytes) -> tuple[VerifyResult, bool]:
        """The result, and whether it depends on the proof alone (a timeout does not)."""
        try:
            instances = decode_instances(proof, circuit.settings)
        except InstanceError as e:
            return _reject(str(e)), True
        transcript_size = len(proof) - HEADER_BYTES - FELT_BYTES * circuit.num_instances
        if transcript_size != circuit.proof_size:
            return _reject(f"proof transcript has {transcript_size} bytes, circuit {circuit.name} has {circuit.proof_size}"), True
        parts = decode_proof(proof)
        proof_json = json.dumps(
            {"instances": [[felt_to_hex(i) for i in parts.instances]], "proof": list(parts.transcript)}
        )
        request = (proof_json, str(circuit.settings_path), str(circuit.vk_path), str(circuit.srs_path))
        self._start_worker()
        try:
            self._connection.send(request)
            if not self._connection.poll(self.timeout):
                self._stop_worker()
                return _reject(f"verification took longer than {self.timeout}s"), False
            failure = self._connection.recv()
        except (EOFError, OSError):
            exitcode = self._stop_worker()
            return _reject(f"verifier process died on this proof (exit code {exitcode})"), True
        self.ezkl_calls += 1
        if failure is not None:
            return _reject(f"proof rejected by circuit {circuit.name}: {failure}"), True
        return VerifyResult(instances=instances, reason=None), True

    def _start_worker(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._stop_worker()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), name="zk-verifier", daemon=True)
        process.start()
        child.close()
        self._process, self._connection = process, parent
        if not parent.poll(START_TIMEOUT_SECONDS) or parent.recv() != READY:
            self._stop_worker()
            raise VerifierUnavailable("the verifier process did not start")

    def _stop_worker(self) -> int | None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is None:
            return None
        process.kill()
        process.join()
        return process.exitcode


def _serve(connection) -> None:
    """The verifier process: answer (proof json, settings, vk, srs) with None or a failure reason."""
    with tempfile.TemporaryDirectory() as scratch:
        proof_path = Path(scratch) / "proof.json"
        connection.send(READY)
        while True:
            try:
                proof_json, settings_path, vk_path, srs_path = connection.recv()
            except EOFError:
                return
            proof_path.write_text(proof_json)
            connection.send(_run_ezkl_verify(proof_path, settings_path, vk_path, srs_path))


def _run_ezkl_verify(proof_path: Path, settings_path: str, vk_path: str, srs_path: str) -> str | None:
    try:
        verified = ezkl.verify(str(proof_path), settings_path, vk_path, srs_path, True)
    except BaseException as e:
        if not is_ezkl_failure(e):
            raise
        return f"{type(e).__name__}: {e}"
    return None if verified is True else "verification returned false"
