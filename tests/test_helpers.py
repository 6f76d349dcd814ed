"""What the shared test helpers promise the other tests."""

import subprocess
import sys

from tests import helpers


def test_subprocesses_import_this_checkout(tmp_path):
    imported = subprocess.run([sys.executable, "-c", "import chain, node; print(chain.__file__, node.__file__)"],
                              cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert imported == [str(helpers.REPO / "chain" / "__init__.py"), str(helpers.REPO / "node" / "__init__.py")]
