"""Circuit manifests: which files make up a model's circuits, their hashes and the layer graph.

`manifest.json` sits in the model's directory; every path in it is relative to that directory.
Loading a manifest re-hashes every file so a node never proves or verifies against an artifact
that differs from the one the manifest (and, later, genesis) pins.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "manifest.json"
REQUEST_INPUT = "request"
ARTIFACT_KINDS = ("model", "settings", "compiled", "vk", "srs")


class ArtifactError(Exception):
    """Base error for missing or inconsistent circuit artifacts."""


class ManifestNotFound(ArtifactError):
    pass


class MalformedManifest(ArtifactError):
    pass


class ArtifactMismatch(ArtifactError):
    pass


@dataclass(frozen=True, eq=False)
class Circuit:
    name: str
    input: str
    logrows: int
    input_scale: int
    output_scale: int
    output_visibility: str
    num_instances: int
    proof_size: int
    tolerance: float
    model_path: Path
    settings_path: Path
    compiled_path: Path
    vk_path: Path
    srs_path: Path
    vk_sha256: str
    settings: dict


@dataclass(frozen=True, eq=False)
class Manifest:
    name: str
    path: Path
    model: str
    layers: tuple[str, ...]
    circuits: dict[str, Circuit]
    data: dict


def compute_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_file_entry(path: Path, base: Path) -> dict:
    relative = Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    return {"path": relative, "sha256": compute_sha256(path)}


def load_manifest(path: Path) -> Manifest:
    """Read a manifest (file or its directory) and check every artifact against its sha256."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestNotFound(f"no circuit manifest at {path}")
    try:
        data = json.loads(path.read_text())
        circuits = {name: _load_circuit(name, entry, path.parent) for name, entry in data["circuits"].items()}
        manifest = Manifest(
            name=data["name"],
            path=path,
            model=data["model"],
            layers=tuple(data["layers"]),
            circuits=circuits,
            data=data,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise MalformedManifest(f"{path}: {e!r}") from None
    check_layer_graph(manifest)
    return manifest


def _load_circuit(name: str, entry: dict, base: Path) -> Circuit:
    files = {kind: base / entry["files"][kind]["path"] for kind in ARTIFACT_KINDS}
    for kind in ARTIFACT_KINDS:
        if not files[kind].is_file():
            raise ArtifactMismatch(f"circuit {name}: {kind} file {files[kind]} is missing")
        pinned = entry["files"][kind]["sha256"]
        actual = compute_sha256(files[kind])
        if actual != pinned:
            raise ArtifactMismatch(
                f"circuit {name}: {kind} file {files[kind]} has sha256 {actual}, manifest pins {pinned}"
            )
    return Circuit(
        name=name,
        input=entry["input"],
        logrows=int(entry["logrows"]),
        input_scale=int(entry["input_scale"]),
        output_scale=int(entry["output_scale"]),
        output_visibility=entry["output_visibility"],
        num_instances=int(entry["num_instances"]),
        proof_size=int(entry["proof_size"]),
        tolerance=float(entry["tolerance"]),
        model_path=files["model"],
        settings_path=files["settings"],
        compiled_path=files["compiled"],
        vk_path=files["vk"],
        srs_path=files["srs"],
        vk_sha256=entry["files"]["vk"]["sha256"],
        settings=json.loads(files["settings"].read_text()),
    )


def check_layer_graph(manifest: Manifest) -> None:
    """Layer 0 reads the request; layer i reads layer i-1 at the scale layer i-1 outputs."""
    if not manifest.layers or manifest.model not in manifest.circuits:
        raise MalformedManifest(f"{manifest.path}: needs a whole-model circuit and at least one layer")
    previous = None
    for name in manifest.layers:
        circuit = manifest.circuits.get(name)
        if circuit is None:
            raise MalformedManifest(f"{manifest.path}: layer {name} has no circuit")
        if previous is None:
            if circuit.input != REQUEST_INPUT:
                raise MalformedManifest(f"{manifest.path}: first layer {name} must read the request")
        elif circuit.input != previous.name or circuit.input_scale != previous.output_scale:
            raise MalformedManifest(f"{manifest.path}: layer {name} does not read layer {previous.name}'s output")
        if name != manifest.layers[-1] and circuit.output_visibility != "hashed":
            raise MalformedManifest(f"{manifest.path}: inner layer {name} must hash its output")
        previous = circuit
    if previous.output_visibility != "public":
        raise MalformedManifest(f"{manifest.path}: last layer {previous.name} must publish its output")
