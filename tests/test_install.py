"""A validator's install is complete: what the node, the CLI and the worker import comes with
`pip install maxwell`, without extras (the `train` extra only retrains the reference model)."""

import importlib.metadata
import json
import re
import subprocess
import sys

NODE_MODULES = ("node.main", "node.worker", "node.application", "zk.models", "zk.verify", "zk.prove")
# grpcio imports grpc_tools when it is installed (its `grpc.tools` shim) and runs without it
IMPORTED_WHEN_INSTALLED = {"grpcio-tools"}


def compute_core_requirements() -> set[str]:
    names = set()
    for requirement in importlib.metadata.requires("maxwell"):
        if "extra ==" not in requirement:
            names.add(re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_what_the_node_imports_is_a_core_dependency():
    script = ("import sys, json\nbare = set(sys.modules)\n"
              f"for name in {NODE_MODULES!r}: __import__(name)\n"
              "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - bare})))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                       text=True).stdout)
    distributions = importlib.metadata.packages_distributions()
    core = compute_core_requirements()
    needed = {distribution.lower().replace("_", "-") for name in loaded for distribution in distributions.get(name, ())}
    needed -= {"maxwell", *IMPORTED_WHEN_INSTALLED}
    allowed = core | {dependency for name in core for dependency in compute_transitive(name)}
    assert needed <= allowed, f"imported by the node but only in an extra: {sorted(needed - allowed)}"
    assert {"ezkl", "onnx", "onnxruntime"} <= core


def compute_transitive(name: str, seen: set[str] | None = None) -> set[str]:
    """The distributions `name` depends on, recursively (markers ignored: over-approximates)."""
    seen = set() if seen is None else seen
    try:
        requirements = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return seen
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        dependency = re.split(r"[<>=!~ ;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if dependency not in seen:
            seen.add(dependency)
            compute_transitive(dependency, seen)
    return seen
