"""`maxwell circuits`: build the reference digits circuits, or add circuits for a user's ONNX model.

Unless a ceremony SRS (`<circuits-dir>/srs/kzg<logrows>.srs`) is present, circuits are set up with
an INSECURE development SRS (`ezkl.gen_srs`): fine for development, never for production.
"""

from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from node import cli
from node.app_config import DEFAULT_CIRCUITS_DIR

DEFAULT_PK_DIR = Path.home() / ".cache" / "maxwell" / "pk"
INSECURE_SRS_NOTICE = (
    "[bold yellow]INSECURE development SRS[/]: these circuits are set up with a locally generated SRS "
    "(ezkl.gen_srs); whoever generated it can forge proofs. Production puts a ceremony SRS "
    "(srs/kzg<logrows>.srs) in the circuits directory, rebuilds, and pins the SRS sha256 in genesis."
)

app = cli.make_group("circuits")


def mount() -> None:
    cli.GROUPS["circuits"] = app

CircuitsDir = Annotated[Path, typer.Option("--circuits-dir", help="Where circuits and the dev SRS live.")]
PkDir = Annotated[Path, typer.Option("--pk-dir", help="Cache of proving keys, keyed by vk sha256.")]


@app.command()
def build(
    model: Annotated[str, typer.Argument(help="'digits' (the reference model) or a model added before.")] = "digits",
    circuits_dir: CircuitsDir = DEFAULT_CIRCUITS_DIR,
    pk_dir: PkDir = DEFAULT_PK_DIR,
) -> None:
    """Train (digits) or reload a model and build every circuit, its vk and manifest.json."""
    from zk import build as zk_build

    _run(lambda progress: zk_build.build(circuits_dir, model, pk_dir, progress))


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="ONNX model with one input and one output.")],
    calibration: Annotated[
        Path, typer.Option("--calibration", help='JSON object whose "inputs" is a list of samples (lists of numbers).')
    ],
    name: Annotated[Optional[str], typer.Option("--name", help="Model name (default: the file's stem).")] = None,
    circuits_dir: CircuitsDir = DEFAULT_CIRCUITS_DIR,
    pk_dir: PkDir = DEFAULT_PK_DIR,
) -> None:
    """Add a user's ONNX model: one circuit (input hashed, output public), calibrated on the given samples."""
    from zk import build as zk_build

    _run(lambda progress: zk_build.add_model(circuits_dir, path, calibration, name, pk_dir, progress))


def _run(action: Callable) -> None:
    """Runs a build with progress bars; zk (EZKL, scikit-learn) loads only here, not with every CLI command."""
    from zk.artifacts import ArtifactError
    from zk.build import BuildError
    from zk.instances import InstanceError
    from zk.prove import ProvingError
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.fields[circuit]:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as bars:
        tasks = {}

        def progress(circuit: str, description: str, completed: int, total: int) -> None:
            if circuit not in tasks:
                tasks[circuit] = bars.add_task(description, total=total, circuit=circuit)
            bars.update(tasks[circuit], description=description, completed=completed, total=total)

        try:
            report = action(progress)
        except (BuildError, ArtifactError, InstanceError, ProvingError, RuntimeError, OSError) as error:
            bars.stop()
            typer.echo(f"Error: {' '.join(str(error).split())}", err=True)
            raise typer.Exit(1)
    _show_report(report)


def _show_report(report) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"circuits written to {report.manifest_path}", title_justify="left")
    for column in ("circuit", "logrows", "rows", "decomp", "setup", "prove", "verify", "proof", "max err", "tolerance"):
        table.add_column(column, justify="right")
    for c in report.circuits:
        table.add_row(
            c.name,
            str(c.logrows),
            str(c.num_rows),
            f"{c.decomposition[0]}^{c.decomposition[1]}",
            f"{c.setup_seconds:.2f}s",
            f"{c.prove_seconds:.2f}s",
            f"{c.verify_seconds * 1000:.1f}ms",
            f"{c.proof_size}B",
            f"{c.max_error:.1e}",
            f"{c.tolerance:.1e}",
        )
    console = Console()
    console.print(table)
    for key, value in report.accuracy.items():
        share = value["correct"] / value["samples"]
        console.print(f"accuracy ({key}): {value['correct']}/{value['samples']} = {share:.2%}")
    if report.insecure_srs:
        Console(stderr=True).print(INSECURE_SRS_NOTICE)
