"""Proving and verifying: maxwell's zk path beside raw EZKL on the same files, and the layer pipeline.

Rows of (measure, value, baseline, ratio) for `make bench`. `ours` proving is zk.prove.prove_circuit
(onnxruntime reference run, witness, proof, tolerance and instance checks); raw is ezkl.gen_witness +
ezkl.prove on the same compiled circuit and proving key. `ours` verifying is zk.verify.Verifier (an
isolated process, cache bypassed) given the bytes of the proofs raw proving wrote; raw is ezkl.verify
in-process on those proof files, alternating with ours call by call; both are medians.
"""

import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import ezkl

from zk.artifacts import load_manifest
from zk.instances import compute_dequantized
from zk.prove import get_proving_key, prove_circuit, read_ezkl_proof
from zk.verify import Verifier

MANIFEST = Path(__file__).resolve().parents[2] / "circuits" / "digits" / "manifest.json"
SAMPLES = 3
VERIFY_REPEATS = 100
PIPELINE_REQUESTS = 4


def compute_inputs(manifest, sample: list[float], pk_dir: Path) -> dict[str, list[float]]:
    """Each circuit's input for one sample: layer i gets layer i-1's dequantized output."""
    inputs, values = {manifest.model: sample}, sample
    for name in manifest.layers:
        inputs[name] = values
        proof = prove_circuit(manifest.circuits[name], values, pk_dir)
        values = compute_dequantized(proof.outputs, proof.output_scale)
    return inputs


def time_raw_prove(circuit, values, pk_path: Path, scratch: Path) -> tuple[float, Path]:
    scratch.mkdir(exist_ok=True)
    data, witness, proof = scratch / "input.json", scratch / "witness.json", scratch / f"{circuit.name}.proof.json"
    data.write_text(json.dumps({"input_data": [list(values)]}))
    start = time.perf_counter()
    ezkl.gen_witness(str(data), str(circuit.compiled_path), str(witness))
    ezkl.prove(str(witness), str(circuit.compiled_path), str(pk_path), str(proof), str(circuit.srs_path))
    return time.perf_counter() - start, proof


def time_verify(verifier: Verifier, circuit, proof_paths: list[Path]) -> tuple[float, float]:
    """Median seconds of (ours, raw) per verification of the same proofs: raw reads EZKL's own proof
    files, ours gets their bytes. The two alternate call by call, each going first every other
    time, so that this VM's drifting speed and cache effects weigh on both alike; each verifies once
    untimed first (the SRS load)."""
    args = (str(circuit.settings_path), str(circuit.vk_path), str(circuit.srs_path))
    proofs = [read_ezkl_proof(path) for path in proof_paths]
    ezkl.verify(str(proof_paths[0]), *args, True)
    verifier.verify(circuit, proofs[0])
    ours, raw = [], []

    def time_ours(i: int) -> None:
        verifier._cache.clear()  # measure verification, not the cache
        start = time.perf_counter()
        assert verifier.verify(circuit, proofs[i % len(proofs)]).is_valid
        ours.append(time.perf_counter() - start)

    def time_raw(i: int) -> None:
        start = time.perf_counter()
        assert ezkl.verify(str(proof_paths[i % len(proof_paths)]), *args, True)
        raw.append(time.perf_counter() - start)

    for i in range(VERIFY_REPEATS):
        for measure in ((time_ours, time_raw) if i % 2 == 0 else (time_raw, time_ours)):
            measure(i)
    return statistics.median(ours), statistics.median(raw)


def prove_stage(names: list[str], pk_dir: str, inbox, outbox, report) -> None:
    """A worker process: proves `names` in order for each request it receives, passes the output on,
    and reports its CPU seconds when told to stop."""
    manifest = load_manifest(MANIFEST)
    cpu = 0.0
    while (values := inbox.get()) is not None:
        start = time.process_time()
        for name in names:
            proof = prove_circuit(manifest.circuits[name], values, Path(pk_dir))
            values = compute_dequantized(proof.outputs, proof.output_scale)
        cpu += time.process_time() - start
        outbox.put(values)
    report.put(cpu)


def run_pipeline(stages: list[list[str]], samples: list[list[float]], pk_dir: Path) -> tuple[float, float, float]:
    """(latency of the first request, wall time for all, CPU seconds summed over workers)."""
    context = multiprocessing.get_context("spawn")
    queues = [context.Queue() for _ in range(len(stages) + 1)]
    report = context.Queue()
    workers = [context.Process(target=prove_stage, args=(names, str(pk_dir), queues[i], queues[i + 1], report))
               for i, names in enumerate(stages)]
    for worker in workers:
        worker.start()
    start = time.perf_counter()
    for sample in samples:
        queues[0].put(sample)
    first = None
    for _ in samples:
        queues[-1].get()
        first = first or time.perf_counter() - start
    wall = time.perf_counter() - start
    for queue in queues[:-1]:
        queue.put(None)
    cpu = sum(report.get() for _ in workers)
    for worker in workers:
        worker.join()
    return first, wall, cpu


def run() -> list[tuple[str, str, str, str]]:
    manifest = load_manifest(MANIFEST)
    samples = json.loads((MANIFEST.parent / "test.json").read_text())["inputs"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir, Verifier() as verifier:
        scratch, pk_dir = Path(scratch_dir), Path(scratch_dir) / "pk"
        for circuit in manifest.circuits.values():
            get_proving_key(circuit, pk_dir)  # setup is a one-time cost, not proving
        inputs = [compute_inputs(manifest, samples[i], pk_dir) for i in range(SAMPLES)]
        for name in (*manifest.layers, manifest.model):
            circuit = manifest.circuits[name]
            pk_path = get_proving_key(circuit, pk_dir)
            raw_prove = ours_prove = 0.0
            raw_proofs = []
            for index, sample_inputs in enumerate(inputs):
                seconds, proof_path = time_raw_prove(circuit, sample_inputs[name], pk_path, scratch / str(index))
                raw_prove += seconds / SAMPLES
                raw_proofs.append(proof_path)
                start = time.perf_counter()
                prove_circuit(circuit, sample_inputs[name], pk_dir)
                ours_prove += (time.perf_counter() - start) / SAMPLES
            ours_verify, raw_verify = time_verify(verifier, circuit, raw_proofs)
            label = f"{name} (logrows {circuit.logrows})"
            rows.append((f"prove {label}", f"{ours_prove:.3f} s", f"{raw_prove:.3f} s raw", f"{ours_prove / raw_prove:.3f}"))
            rows.append((f"verify {label}", f"{ours_verify * 1000:.2f} ms", f"{raw_verify * 1000:.2f} ms raw",
                         f"{ours_verify / raw_verify:.3f}"))
        stream = samples[:PIPELINE_REQUESTS]
        whole = run_pipeline([[manifest.model]], stream, pk_dir)
        layered = run_pipeline([[name] for name in manifest.layers], stream, pk_dir)
        for measure, index, unit in (("latency of one request", 0, "s"), (f"wall time, {len(stream)} requests", 1, "s"),
                                     (f"CPU time, {len(stream)} requests", 2, "s")):
            rows.append((f"3 layer workers vs 1 whole-model worker: {measure}", f"{layered[index]:.2f} {unit}",
                         f"{whole[index]:.2f} {unit} whole", f"{layered[index] / whole[index]:.3f}"))
    return rows

