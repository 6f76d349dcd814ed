"""Chain side: verify untrusted proofs in an isolated process, with a timeout and a result cache.

EZKL reports a bad proof by raising, and on some malformed inputs by panicking with
`pyo3_runtime.PanicException`, which is a BaseException; a native crash would take the whole
process with it. So `ezkl.verify` only ever runs in a child process (`python -m zk.verify`,
independent of the parent's `__main__`) that is replaced whenever it dies or overruns its time
limit, and every outcome is a `VerifyResult`. Results are cached by (vk sha256, proof sha256) so
CheckTx and FinalizeBlock verify a proof once.
"""

import hashlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy

from chain.inference import VerifierUnavailableError, load_settings
from chain.proto.maxwell.inference.v1 import inference_pb2
from zk.artifacts import Circuit
from zk.instances import (
    FELT_BYTES,
    HEADER_BYTES,
    InstanceError,
    ProofParts,
    PublicInstances,
    decode_instances,
    decode_proof,
    felt_to_hex,
    is_ezkl_failure,
)

MAX_PROOF_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
DEFAULT_TIMEOUT_SECONDS = 10.0
VERIFY_ATTEMPTS = 2  # an inconclusive outcome (timeout, dead process) is this node's fault, so retried
START_TIMEOUT_SECONDS = 120.0
CACHE_ENTRIES = 4096
READY = "ready"
WORKER_COMMAND = (sys.executable, "-m", "zk.verify")
# glibc would hand each proof's large buffers back to the kernel and fault them in again for the next
# (~200 page faults, 1-2 ms, per proof); the verifier process keeps them instead.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
REPO_ROOT = Path(__file__).resolve().parents[1]
SRS_DIRS = (REPO_ROOT / "circuits" / "srs",)
BYTE_TEXT = numpy.array([f"{b},".encode().ljust(4, b"\0") for b in range(256)], dtype="S4")
SCRATCH_DIR = "/dev/shm"  # EZKL reads each proof from a file: keep that file in memory


class VerifierUnavailable(Exception):
    pass


@dataclass(frozen=True)
class VerifyResult:
    """`reason` is None for a valid proof. `conclusive` is False when the outcome depends on this
    node rather than the proof (a timeout, a killed verifier process): such results are not cached
    and must not be taken as the proof's verdict where nodes have to agree."""

    instances: PublicInstances | None
    reason: str | None
    conclusive: bool = True

    @property
    def is_valid(self) -> bool:
        return self.reason is None


def _reject(reason: str, conclusive: bool = True) -> VerifyResult:
    return VerifyResult(instances=None, reason=reason, conclusive=conclusive)


class Verifier:
    """Verifies proofs against registered circuits; never raises, never runs EZKL in-process."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, cache_entries: int = CACHE_ENTRIES):
        self.timeout = timeout
        self.cache_entries = cache_entries
        self.ezkl_calls = 0
        self._cache: OrderedDict[tuple[str, str], VerifyResult] = OrderedDict()
        self._lock = threading.Lock()
        self._worker: subprocess.Popen | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._proof_path: str | None = None
        self._proof_fd: int | None = None
        self._requests: dict[tuple, bytes] = {}  # the line sent for each circuit's files, while this worker lives

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
            return _reject(f"verifier error: {e!r}", conclusive=False)

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
            result = self._check(circuit, proof)
            if result.conclusive:
                self._cache[key] = result
                if len(self._cache) > self.cache_entries:
                    self._cache.popitem(last=False)
            return result

    def _check(self, circuit: Circuit, proof: bytes) -> VerifyResult:
        try:
            instances = decode_instances(proof, circuit.settings)
        except InstanceError as e:
            return _reject(str(e))
        transcript_size = len(proof) - HEADER_BYTES - FELT_BYTES * circuit.num_instances
        if transcript_size != circuit.proof_size:
            return _reject(
                f"proof transcript has {transcript_size} bytes, circuit {circuit.name} has {circuit.proof_size}"
            )
        self._start_worker()
        text = compute_ezkl_proof_json(decode_proof(proof))
        os.ftruncate(self._proof_fd, 0)
        os.pwrite(self._proof_fd, text, 0)
        files = (circuit.settings_path, circuit.vk_path, circuit.srs_path)
        request = self._requests.get(files)
        if request is None:
            paths = [self._proof_path, *map(os.path.abspath, files)]
            request = self._requests[files] = json.dumps(paths).encode() + b"\n"
        try:
            os.write(self._worker.stdin.fileno(), request)
            response = _read_line(self._worker.stdout.fileno(), time.monotonic() + self.timeout)
        except TimeoutError:
            self._stop_worker()
            return _reject(f"verification took longer than {self.timeout}s", conclusive=False)
        except (OSError, EOFError):
            exitcode = self._stop_worker()
            return _reject(f"verifier process died (exit code {exitcode})", conclusive=False)
        self.ezkl_calls += 1
        failure = json.loads(response)["failure"]
        if failure is not None:
            return _reject(f"proof rejected by circuit {circuit.name}: {failure}")
        return VerifyResult(instances=instances, reason=None)

    def _start_worker(self) -> None:
        if self._worker is not None and self._worker.poll() is None:
            return
        self._stop_worker()
        self._scratch = tempfile.TemporaryDirectory(dir=SCRATCH_DIR if os.path.isdir(SCRATCH_DIR) else None)
        self._proof_path = os.path.join(self._scratch.name, "proof.json")
        self._requests.clear()
        self._proof_fd = os.open(self._proof_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._worker = subprocess.Popen(
            WORKER_COMMAND, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, **WORKER_MALLOC},
        )
        try:
            ready = _read_line(self._worker.stdout.fileno(), time.monotonic() + START_TIMEOUT_SECONDS)
        except (OSError, EOFError, TimeoutError) as e:
            self._stop_worker()
            raise VerifierUnavailable(f"the verifier process did not start: {e!r}") from None
        if ready != READY:
            self._stop_worker()
            raise VerifierUnavailable(f"the verifier process said {ready!r} instead of {READY!r}")

    def _stop_worker(self) -> int | None:
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            os.close(self._proof_fd)
            scratch.cleanup()
        worker, self._worker = self._worker, None
        if worker is None:
            return None
        worker.kill()
        worker.wait()
        worker.stdin.close()
        worker.stdout.close()
        return worker.returncode


class ModelVerifier:
    """The node's verifier of registered models' layer proofs (chain.inference.ProofVerifier): an
    isolated EZKL `Verifier` and its on-disk mirror of registered circuits.

    Each registered layer is materialized once under `<data_dir>/circuits/<sha256 of vk and
    settings>/` (vk.key, settings.json); its SRS is found by sha256 among the node's SRS files.
    """

    def __init__(self, data_dir: str, srs_dirs=SRS_DIRS, timeout: float | None = None):
        self.directory = Path(data_dir) / "circuits"
        self.srs_dirs = tuple(Path(d) for d in srs_dirs) + (Path(data_dir) / "srs",)
        self.verifier = Verifier(timeout=timeout or DEFAULT_TIMEOUT_SECONDS)
        self._srs: dict[str, Path] = {}
        self._circuits: dict[str, Circuit] = {}

    def close(self) -> None:
        self.verifier.close()

    def find_srs(self, sha256: str) -> Path | None:
        if sha256 not in self._srs:
            for directory in self.srs_dirs:
                for path in sorted(directory.glob("*.srs")) if directory.is_dir() else ():
                    if path not in self._srs.values():
                        self._srs[hashlib.sha256(path.read_bytes()).hexdigest()] = path
        return self._srs.get(sha256)

    def get_circuit(self, name: str, layer: inference_pb2.Layer) -> Circuit:
        key = hashlib.sha256(hashlib.sha256(layer.vk).digest() + layer.settings.encode()).hexdigest()
        circuit = self._circuits.get(key)
        if circuit is not None:
            return circuit
        srs_path = self.find_srs(layer.srs_sha256)
        if srs_path is None:
            raise VerifierUnavailableError(f"this node has no SRS with sha256 {layer.srs_sha256}")
        directory = self.directory / key
        vk_path, settings_path = directory / "vk.key", directory / "settings.json"
        directory.mkdir(parents=True, exist_ok=True)
        for path, content in ((vk_path, layer.vk), (settings_path, layer.settings.encode())):
            if not path.is_file() or path.read_bytes() != content:
                scratch = path.with_suffix(".tmp")
                scratch.write_bytes(content)
                os.replace(scratch, path)
        info = load_settings(layer.settings)
        circuit = Circuit(
            name=f"{name}/{layer.circuit}", input="", logrows=info["logrows"], input_scale=info["input_scale"],
            output_scale=info["output_scale"], output_visibility="hashed" if info["output_hashed"] else "public",
            num_instances=2 if info["output_hashed"] else 1 + info["output_size"],
            proof_size=layer.proof_size, tolerance=0.0, model_path=None, settings_path=settings_path,
            compiled_path=None, vk_path=vk_path, srs_path=srs_path, vk_sha256=hashlib.sha256(layer.vk).hexdigest(),
            settings=info["settings"],
        )
        self._circuits[key] = circuit
        return circuit

    def verify(self, name: str, layer: inference_pb2.Layer, proof: bytes) -> VerifyResult:
        """The proof's verdict, or VerifierUnavailableError when it stays inconclusive."""
        circuit = self.get_circuit(name, layer)
        for _ in range(VERIFY_ATTEMPTS):
            result = self.verifier.verify(circuit, proof)
            if result.conclusive:
                return result
        raise VerifierUnavailableError(f"proof verification inconclusive: {result.reason}")


def _read_line(fd: int, deadline: float) -> str:
    """One newline-terminated line from a pipe, or TimeoutError at `deadline`, EOFError if it closes."""
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, MAX_RESPONSE_BYTES)
        if not chunk:
            raise EOFError
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            raise EOFError
    return data.decode().rstrip("\n")


def compute_ezkl_proof_json(parts: ProofParts) -> bytes:
    """The proof file `ezkl.verify` reads: hex instances and the transcript as a JSON list of bytes
    (written through a table of "n," texts, NUL-padded to 4 bytes: a third of the time of a join)."""
    instances = ",".join(f'"{felt_to_hex(i)}"' for i in parts.instances).encode()
    transcript = BYTE_TEXT[numpy.frombuffer(parts.transcript, numpy.uint8)].tobytes().replace(b"\0", b"")[:-1]
    return b'{"instances":[[' + instances + b']],"proof":[' + transcript + b"]}"


def _run_ezkl_verify(proof_path: str, settings_path: str, vk_path: str, srs_path: str) -> str | None:
    try:
        verified = ezkl.verify(proof_path, settings_path, vk_path, srs_path, True)
    except BaseException as e:
        if not is_ezkl_failure(e):
            raise
        return f"{type(e).__name__}: {e}"
    return None if verified is True else "verification returned false"


def serve() -> None:
    """The verifier process: one JSON list of file paths (proof, settings, vk, SRS) per line in, one
    {"failure": null | reason} line out. The parent writes the proof file; only EZKL's reading of it runs here.

    Native code may print to stdout, so responses go to a private copy of it and fd 1 is pointed at stderr.
    """
    responses = os.dup(1)
    os.dup2(2, 1)
    os.write(responses, (READY + "\n").encode())
    for line in sys.stdin.buffer:
        failure = _run_ezkl_verify(*json.loads(line))
        os.write(responses, (json.dumps({"failure": failure}) + "\n").encode())


if __name__ == "__main__":
    serve()
