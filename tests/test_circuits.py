"""The committed circuits and their build: pinned artifacts, reproducibility, and `maxwell circuits add`."""

import json
import shutil
from pathlib import Path

import ezkl
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from node.circuits_cmd import app
from tests.helpers import CIRCUITS, DIGITS
from zk import build, digits
from zk.artifacts import ArtifactMismatch, MalformedManifest, compute_sha256, load_manifest
from zk.prove import prove_circuit, run_onnx
from zk.verify import Verifier

MAX_COMMITTED_BYTES = 5 * 2**20


def test_manifest_pins_circuits_and_layer_graph(manifest):
    assert manifest.layers == ("layer0", "layer1", "layer2") and manifest.model == "model"
    assert [manifest.circuits[name].input for name in manifest.layers] == ["request", "layer0", "layer1"]
    for previous, current in zip(manifest.layers, manifest.layers[1:]):
        assert manifest.circuits[current].input_scale == manifest.circuits[previous].output_scale
    for name, circuit in manifest.circuits.items():
        run_args = circuit.settings["run_args"]
        assert run_args["param_visibility"] == "Fixed"
        assert "Hashed" in run_args["input_visibility"]
        hashed_output = name in manifest.layers[:-1]
        assert ("Hashed" in run_args["output_visibility"]) == hashed_output
        assert hashed_output or run_args["output_visibility"] == "Public"
        assert run_args["logrows"] == circuit.logrows <= 13
        assert circuit.srs_path.stat().st_size == 128 * 2**circuit.logrows + 260
        assert "insecure" in circuit.srs_path.name
        assert manifest.data["circuits"][name]["files"]["srs"]["insecure"] is True
    assert "INSECURE" in manifest.data["srs"]


def test_tampered_or_missing_artifacts_are_detected(tmp_path):
    shutil.copytree(CIRCUITS, tmp_path / "circuits")
    copy = tmp_path / "circuits" / "digits"
    vk = copy / "layer1" / "vk.key"
    data = bytearray(vk.read_bytes())
    data[100] ^= 1
    vk.write_bytes(data)
    with pytest.raises(ArtifactMismatch, match="layer1: vk"):
        load_manifest(copy)
    vk.unlink()
    with pytest.raises(ArtifactMismatch, match="missing"):
        load_manifest(copy)
    shutil.copyfile(DIGITS / "layer1" / "vk.key", vk)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["layers"] = ["layer1", "layer0", "layer2"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MalformedManifest):
        load_manifest(copy)


def test_no_proving_key_is_committed_and_artifacts_are_small():
    files = [p for p in CIRCUITS.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".pk" or p.name.startswith("pk")]
    assert sum(p.stat().st_size for p in files) < MAX_COMMITTED_BYTES


def test_reference_model_is_accurate_in_and_out_of_the_circuit(manifest):
    accuracy = manifest.data["accuracy"]
    assert accuracy["sklearn"]["samples"] == 450 and accuracy["sklearn"]["correct"] >= 0.95 * 450
    assert accuracy["onnxruntime"] == accuracy["sklearn"]
    samples = json.loads((DIGITS / "test.json").read_text())
    onnx_correct = sum(
        int(np.argmax(run_onnx(manifest.circuits["model"].model_path, x))) == y
        for x, y in zip(samples["inputs"], samples["labels"])
    )
    for key in ("circuit", "layered_circuit"):
        assert accuracy[key]["samples"] == len(samples["labels"]) == 100
        assert abs(accuracy[key]["correct"] - onnx_correct) <= 1


def test_training_reproduces_the_committed_models():
    model = digits.train_digits_model()
    expected = {"model": digits.compute_dense_onnx("digits", model.layers)}
    expected |= {f"layer{i}": digits.compute_dense_onnx(f"layer{i}", (layer,)) for i, layer in enumerate(model.layers)}
    for name, onnx_model in expected.items():
        assert onnx_model.SerializeToString() == (DIGITS / name / "model.onnx").read_bytes(), name


def test_calibration_and_setup_reproduce_settings_and_vk(manifest, tmp_path):
    """Rebuild the last layer from its model and the calibration samples: same settings bytes, same vk."""
    entry = manifest.data["circuits"]["layer2"]
    circuit = manifest.circuits["layer2"]
    samples = build.read_samples(DIGITS / build.CALIBRATION_FILE)
    inputs = [run_onnx(manifest.circuits["layer1"].model_path, run_onnx(manifest.circuits["layer0"].model_path, x))
              for x in samples]
    decomposition = (entry["decomp_base"], entry["decomp_legs"])
    settings = build.calibrate(circuit.model_path, inputs, "public", decomposition, circuit.input_scale, tmp_path)
    build.write_settings(settings, tmp_path / "settings.json")
    assert (tmp_path / "settings.json").read_bytes() == circuit.settings_path.read_bytes()
    compiled, vk, pk = (str(tmp_path / name) for name in ("model.compiled", "vk.key", "pk.key"))
    ezkl.compile_circuit(str(circuit.model_path), compiled, str(tmp_path / "settings.json"))
    ezkl.setup(compiled, vk, pk, srs_path=str(circuit.srs_path))
    assert compute_sha256(Path(vk)) == circuit.vk_sha256


def _tiny_model(directory: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    layers = tuple(
        digits.DenseLayer(
            rng.normal(0, 0.5, shape).astype(np.float32), rng.normal(0, 0.1, shape[1]).astype(np.float32), relu
        )
        for shape, relu in (((8, 8), True), ((8, 4), False))
    )
    model_path, calibration_path = directory / "tiny.onnx", directory / "samples.json"
    onnx.save(digits.compute_dense_onnx("tiny", layers), str(model_path))
    calibration_path.write_text(json.dumps({"inputs": rng.uniform(0, 1, (12, 8)).round(3).tolist()}))
    return model_path, calibration_path


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_add_builds_a_provable_circuit_and_rebuilds_it_identically(tmp_path):
    model_path, calibration_path = _tiny_model(tmp_path)
    circuits, pk_dir = tmp_path / "circuits", tmp_path / "pk"
    options = ("--circuits-dir", circuits, "--pk-dir", pk_dir)
    added = _invoke("add", model_path, "--calibration", calibration_path, *options)
    assert added.exit_code == 0, added.output
    assert "INSECURE" in added.output
    manifest = load_manifest(circuits / "tiny")
    circuit = manifest.circuits["model"]
    assert manifest.data["circuits"]["model"]["files"]["srs"]["insecure"] is True
    assert manifest.layers == ("model",) and circuit.logrows <= 11 and circuit.output_visibility == "public"
    x = json.loads(calibration_path.read_text())["inputs"][3]
    proof = prove_circuit(circuit, x, pk_dir)
    with Verifier() as verifier:
        result = verifier.verify(circuit, proof.proof)
    assert result.is_valid and result.instances.outputs == proof.outputs

    rebuilt = _invoke("build", "tiny", *options)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert load_manifest(circuits / "tiny").circuits["model"].vk_sha256 == circuit.vk_sha256


def test_a_ceremony_srs_takes_precedence_over_the_dev_srs(tmp_path):
    """`kzg<k>.srs` is where a ceremony SRS goes; a gen_srs file stands in for one here."""
    model_path, calibration_path = _tiny_model(tmp_path)
    circuits = tmp_path / "circuits"
    (circuits / "srs").mkdir(parents=True)
    ezkl.gen_srs(str(circuits / "srs" / "kzg10.srs"), 10)
    options = ("--circuits-dir", circuits, "--pk-dir", tmp_path / "pk")
    added = _invoke("add", model_path, "--calibration", calibration_path, *options)
    assert added.exit_code == 0, added.output
    assert "INSECURE" not in added.output
    manifest = load_manifest(circuits / "tiny")
    assert manifest.circuits["model"].srs_path.name == "kzg10.srs"
    assert manifest.data["circuits"]["model"]["files"]["srs"]["insecure"] is False
    assert manifest.data["srs"] == build.CEREMONY_SRS_NOTE
    assert [p.name for p in (circuits / "srs").iterdir()] == ["kzg10.srs"]


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("not onnx", "not a valid ONNX model"),
        ("not json", "expected {"),
        ("wrong length", "takes 8 values"),
        ("ragged", "expected {"),
        ("no samples", "at least one sample"),
        ("reserved name", "must match"),
        ("existing name", "exists"),
    ],
)
def test_add_refuses_bad_input_and_changes_nothing(tmp_path, case, fragment):
    model_path, calibration_path = _tiny_model(tmp_path)
    circuits = tmp_path / "circuits"
    (circuits / "tiny").mkdir(parents=True)
    name = "tiny" if case == "existing name" else ("digits" if case == "reserved name" else "other")
    if case == "not onnx":
        model_path.write_bytes(b"not a model")
    samples = {
        "not json": "{",
        "wrong length": json.dumps({"inputs": [[0.5] * 7]}),
        "ragged": json.dumps({"inputs": [[0.5] * 8, [[0.5], 1]]}),
        "no samples": json.dumps({"inputs": []}),
    }
    if case in samples:
        calibration_path.write_text(samples[case])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    options = ("--name", name, "--circuits-dir", circuits, "--pk-dir", tmp_path / "pk")
    result = _invoke("add", model_path, "--calibration", calibration_path, *options)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and fragment in result.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_build_of_an_unknown_model_fails_cleanly(tmp_path):
    result = _invoke("build", "nope", "--circuits-dir", tmp_path, "--pk-dir", tmp_path / "pk")
    assert result.exit_code == 1 and "no model 'nope'" in result.output
