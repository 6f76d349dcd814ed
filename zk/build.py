"""Reproducible EZKL builds: calibrated settings, decomposition search, compiled circuit, dev SRS, vk, manifest.

For every circuit the build calibrates on real samples at one input scale shared by the whole
model (so a layer's output quantizes exactly as the next layer's input), tries each
decomposition in `DECOMPOSITIONS`, and keeps the one with the fewest logrows whose compiled
circuit passes `mock` on every test sample. Settings are written canonically (sorted keys and
sets, timestamp zeroed) and `setup` is deterministic, so rebuilding from the same model, samples
and SRS reproduces the settings and vk byte for byte.

The SRS for each logrows k is a ceremony SRS if `kzg<k>.srs` (EZKL's `get_srs` naming) is in the
SRS directory, else a development SRS from `gen_srs`, generated once and kept: INSECURE, since
whoever generated it can forge proofs.
"""

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import ezkl
import numpy as np
import onnx

from zk import digits
from zk.artifacts import MANIFEST_NAME, REQUEST_INPUT, compute_file_entry, compute_sha256, load_manifest
from zk.instances import compute_dequantized, decode_proof
from zk.prove import PROVING_KEY_SUFFIX, compute_max_error, generate_witness, read_ezkl_proof, run_onnx
from zk.instances import is_ezkl_failure

DECOMPOSITIONS = ((16384, 2), (1024, 3), (128, 4), (32, 6), (16, 7))
CALIBRATION_TARGET = "resources"
TOLERANCE_MARGIN = 4
TOLERANCE_FLOOR_ULPS = 4
MAX_TEST_SAMPLES = 100
DIGITS = "digits"
WHOLE_MODEL = "model"
SRS_DIRECTORY = "srs"
DEV_SRS_FILE = "dev-insecure-k{logrows}.srs"
CEREMONY_SRS_FILE = "kzg{logrows}.srs"
CEREMONY_SRS_NOTE = "ceremony SRS (kzg<logrows>.srs); genesis pins its sha256"
SRS_WARNING = (
    "INSECURE development SRS generated locally by ezkl.gen_srs: whoever generated it can forge proofs. "
    "Production replaces it with a ceremony SRS and genesis pins its sha256."
)
MODEL_FILE = "model.onnx"
SETTINGS_FILE = "settings.json"
COMPILED_FILE = "model.compiled"
VK_FILE = "vk.key"
CALIBRATION_FILE = "calibration.json"
TEST_FILE = "test.json"
MODEL_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
RESERVED_NAMES = (DIGITS, SRS_DIRECTORY)

Progress = Callable[[str, str, int, int], None]


class BuildError(Exception):
    """Base error for a model that cannot be turned into circuits."""


class MalformedSamples(BuildError):
    pass


class UnsupportedModel(BuildError):
    pass


class InvalidModelName(BuildError):
    pass


class ModelExists(BuildError):
    pass


class NoWorkingDecomposition(BuildError):
    pass


@dataclass(frozen=True)
class CircuitSource:
    name: str
    input: str
    output_visibility: str


@dataclass(frozen=True)
class CircuitReport:
    name: str
    logrows: int
    num_rows: int
    decomposition: tuple[int, int]
    setup_seconds: float
    prove_seconds: float
    verify_seconds: float
    proof_size: int
    max_error: float
    tolerance: float
    samples_checked: int


@dataclass(frozen=True)
class BuildReport:
    manifest_path: Path
    circuits: tuple[CircuitReport, ...]
    accuracy: dict
    insecure_srs: bool


@dataclass(frozen=True)
class _BuiltCircuit:
    entry: dict
    test_outputs: list[list[float]]
    report: CircuitReport


def build(root: Path, name: str, pk_dir: Path, progress: Progress) -> BuildReport:
    """Rebuild the circuits of `name`: the reference digits model, or a model added earlier."""
    if name == DIGITS:
        return build_digits(root, pk_dir, progress)
    directory = Path(root) / name
    if not MODEL_NAME_PATTERN.fullmatch(name) or not (directory / WHOLE_MODEL / MODEL_FILE).is_file():
        raise UnsupportedModel(f"no model {name!r} under {root}: add it with `maxwell circuits add`")
    samples = read_samples(directory / CALIBRATION_FILE)
    return _build_single_circuit(Path(root), directory, samples, pk_dir, progress)


def build_digits(root: Path, pk_dir: Path, progress: Progress) -> BuildReport:
    progress(DIGITS, "training the MLP", 0, 1)
    model = digits.train_digits_model()
    progress(DIGITS, "trained", 1, 1)
    directory = Path(root) / DIGITS
    _save_onnx(digits.compute_dense_onnx(DIGITS, model.layers), directory / WHOLE_MODEL / MODEL_FILE)
    sources = [CircuitSource(WHOLE_MODEL, REQUEST_INPUT, "public")]
    for i, layer in enumerate(model.layers):
        name = f"layer{i}"
        _save_onnx(digits.compute_dense_onnx(name, (layer,)), directory / name / MODEL_FILE)
        last = i == len(model.layers) - 1
        sources.append(CircuitSource(name, sources[-1].name if i else REQUEST_INPUT, "public" if last else "hashed"))
    calibration = model.train_inputs[: digits.CALIBRATION_SAMPLES].tolist()
    tests = model.test_inputs[: digits.TEST_SAMPLES].tolist()
    labels = model.test_labels[: digits.TEST_SAMPLES].tolist()
    write_samples(directory / CALIBRATION_FILE, calibration)
    write_samples(directory / TEST_FILE, tests, labels)
    whole_path = directory / WHOLE_MODEL / MODEL_FILE
    total = len(model.test_labels)
    onnx_correct = sum(
        int(np.argmax(run_onnx(whole_path, x))) == int(y) for x, y in zip(model.test_inputs.tolist(), model.test_labels)
    )
    accuracy = {
        "sklearn": {"samples": total, "correct": round(model.test_accuracy * total)},
        "onnxruntime": {"samples": total, "correct": onnx_correct},
    }
    return build_model(
        Path(root), directory, DIGITS, sources, calibration, tests, labels, pk_dir, progress, accuracy
    )


def add_model(
    root: Path, onnx_path: Path, calibration_path: Path, name: str | None, pk_dir: Path, progress: Progress
) -> BuildReport:
    """Copy a user's ONNX model and calibration samples under `root/<name>` and build its circuit."""
    name = name or Path(onnx_path).stem.lower()
    if not MODEL_NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
        raise InvalidModelName(
            f"model name {name!r} must match {MODEL_NAME_PATTERN.pattern} and not be one of {RESERVED_NAMES}"
        )
    directory = Path(root) / name
    if directory.exists():
        raise ModelExists(f"{directory} exists: rebuild it with `maxwell circuits build {name}`")
    check_onnx_model(Path(onnx_path))
    samples = read_samples(Path(calibration_path))
    run_onnx(Path(onnx_path), samples[0])
    (directory / WHOLE_MODEL).mkdir(parents=True)
    try:
        shutil.copyfile(onnx_path, directory / WHOLE_MODEL / MODEL_FILE)
        write_samples(directory / CALIBRATION_FILE, samples)
        return _build_single_circuit(Path(root), directory, samples, pk_dir, progress)
    except BaseException:
        shutil.rmtree(directory)
        raise


def _build_single_circuit(
    root: Path, directory: Path, samples: list[list[float]], pk_dir: Path, progress: Progress
) -> BuildReport:
    """A user model is one circuit: the whole model, which is also its only layer."""
    sources = [CircuitSource(WHOLE_MODEL, REQUEST_INPUT, "public")]
    tests = samples[:MAX_TEST_SAMPLES]
    return build_model(root, directory, directory.name, sources, samples, tests, None, pk_dir, progress, {})


def build_model(
    root: Path,
    directory: Path,
    name: str,
    sources: Sequence[CircuitSource],
    calibration: list[list[float]],
    tests: list[list[float]],
    labels: list[int] | None,
    pk_dir: Path,
    progress: Progress,
    accuracy: dict,
) -> BuildReport:
    """Build every circuit of a model; `sources[0]` is the whole model, the rest its layers (if any)."""
    scale = compute_input_scale(directory / WHOLE_MODEL / MODEL_FILE, calibration, progress)
    built: dict[str, _BuiltCircuit] = {}
    calibration_inputs: dict[str, list[list[float]]] = {}
    for source in sources:
        model_path = directory / source.name / MODEL_FILE
        if source.input == REQUEST_INPUT:
            calibration_inputs[source.name] = calibration
            test_inputs = tests
        else:
            previous_model = directory / source.input / MODEL_FILE
            calibration_inputs[source.name] = [run_onnx(previous_model, x) for x in calibration_inputs[source.input]]
            test_inputs = built[source.input].test_outputs
        built[source.name] = build_circuit(
            source, model_path, calibration_inputs[source.name], test_inputs, scale, root / SRS_DIRECTORY, pk_dir,
            progress,
        )
    layers = [source.name for source in sources[1:]] or [WHOLE_MODEL]
    insecure_srs = any(built[source.name].entry["files"]["srs"]["insecure"] for source in sources)
    if labels is not None:
        for circuit, key in ((WHOLE_MODEL, "circuit"), (layers[-1], "layered_circuit")):
            predictions = [int(np.argmax(outputs)) for outputs in built[circuit].test_outputs]
            accuracy[key] = {"samples": len(labels), "correct": sum(p == y for p, y in zip(predictions, labels))}
    manifest = {
        "name": name,
        "ezkl_version": ezkl_version(directory / WHOLE_MODEL / SETTINGS_FILE),
        "srs": SRS_WARNING if insecure_srs else CEREMONY_SRS_NOTE,
        "model": WHOLE_MODEL,
        "layers": layers,
        "accuracy": accuracy,
        "samples": {
            "calibration": compute_file_entry(directory / CALIBRATION_FILE, directory),
            **({"test": compute_file_entry(directory / TEST_FILE, directory)} if labels is not None else {}),
        },
        "circuits": {source.name: built[source.name].entry for source in sources},
    }
    manifest_path = directory / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    load_manifest(manifest_path)
    return BuildReport(
        manifest_path=manifest_path,
        circuits=tuple(built[source.name].report for source in sources),
        accuracy=accuracy,
        insecure_srs=insecure_srs,
    )


def compute_input_scale(model_path: Path, calibration: list[list[float]], progress: Progress) -> int:
    """Let EZKL's calibration pick the input scale for the whole model; every circuit then uses it."""
    progress("scale", "calibrating input scale", 0, 1)
    with tempfile.TemporaryDirectory() as scratch:
        settings = calibrate(model_path, calibration, "public", DECOMPOSITIONS[0], None, Path(scratch))
    progress("scale", f"input scale {settings['model_input_scales'][0]}", 1, 1)
    return settings["model_input_scales"][0]


def calibrate(
    model_path: Path,
    samples: list[list[float]],
    output_visibility: str,
    decomposition: tuple[int, int],
    scale: int | None,
    scratch: Path,
) -> dict:
    run_args = ezkl.PyRunArgs()
    run_args.param_visibility = "fixed"
    run_args.input_visibility = "hashed"
    run_args.output_visibility = output_visibility
    run_args.decomp_base, run_args.decomp_legs = decomposition
    data_path, settings_path = scratch / "calibration.json", scratch / "settings.json"
    data_path.write_text(json.dumps({"input_data": [[v for sample in samples for v in sample]]}))
    with _captured_stderr():
        ezkl.gen_settings(str(model_path), str(settings_path), run_args)
        ezkl.calibrate_settings(
            str(data_path), str(model_path), str(settings_path), CALIBRATION_TARGET,
            scales=None if scale is None else [scale],
        )
    return json.loads(settings_path.read_text())


@dataclass
class _Steps:
    """One progress bar: a circuit's build steps."""

    task: str
    total: int
    progress: Progress
    done: int = 0

    def advance(self, description: str, count: int = 1) -> None:
        self.progress(self.task, description, self.done, self.total)
        self.done += count


@dataclass(frozen=True)
class _CheckedSettings:
    settings: dict
    test_outputs: list[list[float]]
    max_error: float


def build_circuit(
    source: CircuitSource,
    model_path: Path,
    calibration: list[list[float]],
    tests: list[list[float]],
    scale: int,
    srs_dir: Path,
    pk_dir: Path,
    progress: Progress,
) -> _BuiltCircuit:
    directory = model_path.parent
    settings_path, compiled_path, vk_path = directory / SETTINGS_FILE, directory / COMPILED_FILE, directory / VK_FILE
    steps = _Steps(source.name, len(DECOMPOSITIONS) + len(tests) + 3, progress)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        checked = choose_settings(source, model_path, calibration, tests, scale, scratch, steps)
        settings = checked.settings
        logrows = settings["run_args"]["logrows"]
        steps.advance(f"SRS k={logrows}")
        srs_path, insecure_srs = ensure_srs(srs_dir, logrows)
        steps.advance("setup")
        pk_path = scratch / "pk.key"
        started = time.perf_counter()
        ezkl.setup(str(compiled_path), str(vk_path), str(pk_path), srs_path=str(srs_path))
        setup_seconds = time.perf_counter() - started
        steps.advance("proving a test sample")
        proof, prove_seconds, verify_seconds = measure_proof(
            tests[0], compiled_path, settings_path, vk_path, pk_path, srs_path, scratch
        )
        Path(pk_dir).mkdir(parents=True, exist_ok=True)
        shutil.move(pk_path, Path(pk_dir) / f"{compute_sha256(vk_path)}{PROVING_KEY_SUFFIX}")
    progress(source.name, f"done: logrows {logrows}", steps.total, steps.total)
    output_scale = settings["model_output_scales"][0]
    tolerance = max(TOLERANCE_MARGIN * checked.max_error, TOLERANCE_FLOOR_ULPS / 2**output_scale)
    parts = decode_proof(proof)
    base = directory.parent
    entry = {
        "input": source.input,
        "output_visibility": source.output_visibility,
        "logrows": logrows,
        "num_rows": settings["num_rows"],
        "input_scale": scale,
        "param_scale": settings["run_args"]["param_scale"],
        "output_scale": output_scale,
        "decomp_base": settings["run_args"]["decomp_base"],
        "decomp_legs": settings["run_args"]["decomp_legs"],
        "num_instances": len(parts.instances),
        "proof_size": len(parts.transcript),
        "max_observed_error": checked.max_error,
        "tolerance": tolerance,
        "files": {
            "model": compute_file_entry(model_path, base),
            "settings": compute_file_entry(settings_path, base),
            "compiled": compute_file_entry(compiled_path, base),
            "vk": compute_file_entry(vk_path, base),
            "srs": compute_file_entry(srs_path, base) | {"insecure": insecure_srs},
        },
    }
    report = CircuitReport(
        name=source.name,
        logrows=logrows,
        num_rows=settings["num_rows"],
        decomposition=_decomposition(settings),
        setup_seconds=setup_seconds,
        prove_seconds=prove_seconds,
        verify_seconds=verify_seconds,
        proof_size=len(proof),
        max_error=checked.max_error,
        tolerance=tolerance,
        samples_checked=len(tests),
    )
    return _BuiltCircuit(entry=entry, test_outputs=checked.test_outputs, report=report)


def choose_settings(
    source: CircuitSource,
    model_path: Path,
    calibration: list[list[float]],
    tests: list[list[float]],
    scale: int,
    scratch: Path,
    steps: _Steps,
) -> _CheckedSettings:
    """Calibrate with every decomposition; compile the one with the fewest logrows (then rows) that
    keeps the layer graph's scales and mock-proves every test sample."""
    candidates, failures = [], []
    for decomposition in DECOMPOSITIONS:
        steps.advance(f"calibrating, decomposition {decomposition[0]}^{decomposition[1]}")
        try:
            settings = calibrate(model_path, calibration, source.output_visibility, decomposition, scale, scratch)
        except BaseException as e:
            if not is_ezkl_failure(e):
                raise
            failures.append(f"{decomposition}: calibration failed: {e}")
            continue
        scales = (settings["model_input_scales"], settings["model_output_scales"])
        if scales[0] != [scale] or (source.output_visibility == "hashed" and scales[1] != [scale]):
            failures.append(f"{decomposition}: scales {scales[0]} -> {scales[1]} break the layer graph")
            continue
        candidates.append(settings)
    candidates.sort(key=lambda s: (s["run_args"]["logrows"], s["num_rows"]))
    directory = model_path.parent
    settings_path, compiled_path = directory / SETTINGS_FILE, directory / COMPILED_FILE
    for settings in candidates:
        write_settings(settings, settings_path)
        ezkl.compile_circuit(str(model_path), str(compiled_path), str(settings_path))
        # A candidate that fails must not advance the bar, so it is checked on a copy.
        checked = check_test_samples(model_path, compiled_path, settings, tests, scratch, replace(steps))
        if checked is not None:
            steps.done += len(tests)
            return checked
        failures.append(f"{_decomposition(settings)}: a test sample does not prove")
    raise NoWorkingDecomposition(f"circuit {source.name}: no decomposition works: " + "; ".join(failures))


def check_test_samples(
    model_path: Path, compiled_path: Path, settings: dict, tests: list[list[float]], scratch: Path, steps: _Steps
) -> _CheckedSettings | None:
    """Mock-prove every test sample and compare the circuit's outputs with onnxruntime's."""
    output_scale = settings["model_output_scales"][0]
    outputs, max_error = [], 0.0
    for i, sample in enumerate(tests):
        steps.advance(f"{_decomposition(settings)}: mock-proving test sample {i + 1}/{len(tests)}")
        try:
            witness_path, quantized = generate_witness(compiled_path, sample, scratch)
            with _captured_stderr():
                ezkl.mock(str(witness_path), str(compiled_path))
        except BaseException as e:
            if not is_ezkl_failure(e):
                raise
            return None
        max_error = max(max_error, compute_max_error(quantized, output_scale, run_onnx(model_path, sample)))
        outputs.append(compute_dequantized(quantized, output_scale))
    return _CheckedSettings(settings=settings, test_outputs=outputs, max_error=max_error)


def measure_proof(
    sample: list[float],
    compiled_path: Path,
    settings_path: Path,
    vk_path: Path,
    pk_path: Path,
    srs_path: Path,
    scratch: Path,
) -> tuple[bytes, float, float]:
    """Prove and verify one sample in-process (our own proof, so no isolation needed); time both."""
    witness_path, _ = generate_witness(compiled_path, sample, scratch)
    proof_path = scratch / "proof.json"
    started = time.perf_counter()
    ezkl.prove(str(witness_path), str(compiled_path), str(pk_path), str(proof_path), str(srs_path))
    prove_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ezkl.verify(str(proof_path), str(settings_path), str(vk_path), str(srs_path), True)
    verify_seconds = time.perf_counter() - started
    return read_ezkl_proof(proof_path), prove_seconds, verify_seconds


def ensure_srs(srs_dir: Path, logrows: int) -> tuple[Path, bool]:
    """The SRS for `logrows` and whether it is insecure: the ceremony file if present, else the
    development SRS, generated once and then reused so vks stay stable."""
    ceremony = Path(srs_dir) / CEREMONY_SRS_FILE.format(logrows=logrows)
    if ceremony.is_file():
        return ceremony, False
    path = Path(srs_dir) / DEV_SRS_FILE.format(logrows=logrows)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        ezkl.gen_srs(str(path), logrows)
    return path, True


def write_settings(settings: dict, path: Path) -> None:
    """Canonical settings. EZKL writes a wall-clock timestamp, and maps and sets in random order;
    the order of the required lookups and range checks even changes the vk, so they are sorted."""
    canonical = settings | {
        "timestamp": 0,
        "required_lookups": sorted(settings["required_lookups"], key=json.dumps),
        "required_range_checks": sorted(settings["required_range_checks"], key=json.dumps),
    }
    path.write_text(json.dumps(canonical, indent=2, sort_keys=True) + "\n")


def ezkl_version(settings_path: Path) -> str:
    return json.loads(settings_path.read_text())["version"]


def check_onnx_model(path: Path) -> None:
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        raise UnsupportedModel(f"{path} is not a valid ONNX model: {e}") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise UnsupportedModel(f"{path} must have exactly one input and one output")


def read_samples(path: Path) -> list[list[float]]:
    """Samples file: {"inputs": [sample, ...]}, each sample a (possibly nested) list of numbers."""
    try:
        data = json.loads(Path(path).read_text())
        samples = [np.asarray(sample, dtype=np.float64).ravel().tolist() for sample in data["inputs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MalformedSamples(f"{path}: expected {{\"inputs\": [[numbers...], ...]}}: {e}") from None
    if not samples or len({len(s) for s in samples}) != 1 or not all(math.isfinite(v) for s in samples for v in s):
        raise MalformedSamples(f"{path}: needs at least one sample, all of one length, all finite")
    return samples


def write_samples(path: Path, inputs: list[list[float]], labels: list[int] | None = None) -> None:
    data = {"inputs": inputs} | ({"labels": labels} if labels is not None else {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def _save_onnx(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _decomposition(settings: dict) -> tuple[int, int]:
    return settings["run_args"]["decomp_base"], settings["run_args"]["decomp_legs"]


@contextlib.contextmanager
def _captured_stderr():
    """EZKL prints its calibration report straight to file descriptor 2, over our progress bars."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
