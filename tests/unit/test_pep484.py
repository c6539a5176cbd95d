"""The PEP 484 check as a test, as Debian's python-apt and unattended-upgrades run theirs
(their tests/test_pep484.py): Debian's mypy, configured by mypy.ini (strict on duckdns/),
under Debian's Python. `make lint` runs the same check. And the named tuples' typed twins
(docs/design.md, "Modules") are held to the tuples the run uses.

mypy's cache goes to the test's temporary directory: nothing is written into the tree (the
unit tests also run from a read-only bind mount of it in another release's root).
"""

from __future__ import annotations

import ast
import importlib
import subprocess

import pytest
from support.helpers import CLEAN_ENV, DEBIAN_PYTHON, ROOT, skip_or_fail

CONFIG = ROOT / "mypy.ini"


@pytest.fixture(scope="module")
def mypy(tmp_path_factory):
    """Run Debian's mypy with the project's configuration; skipped if it is not installed."""
    found = subprocess.run([DEBIAN_PYTHON, "-c", "import mypy"], capture_output=True, check=False)
    if found.returncode:
        skip_or_fail("Debian's mypy is not installed (make test-deps installs it)")
    cache = tmp_path_factory.mktemp("mypy-cache")

    def run(*targets: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DEBIAN_PYTHON, "-m", "mypy", "--config-file", str(CONFIG), "--cache-dir", str(cache)]
            + list(targets),
            cwd=ROOT,
            env=CLEAN_ENV,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def test_the_package_passes_mypy_strict(mypy):
    """Every module of duckdns/ checked (the config's ``files``), and no error."""
    proc = mypy()
    modules = len(list((ROOT / "duckdns").glob("*.py")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"no issues found in {modules} source files" in proc.stdout, proc.stdout


def test_the_configuration_is_strict(mypy, tmp_path):
    """The other side: a function without annotations, which only --strict refuses, is an
    error under the same configuration (so the check above is the strict one)."""
    untyped = tmp_path / "untyped_example.py"
    untyped.write_text("def double(x):\n    return 2 * x\n")
    proc = mypy(str(untyped))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[no-untyped-def]" in proc.stdout, proc.stdout


def typed_twins() -> dict[tuple[str, str], tuple[tuple[str, ...], dict[str, object]]]:
    """(module, name) -> the fields and defaults of each ``typing.NamedTuple`` class written
    under ``if TYPE_CHECKING:`` for the checker, read from the source (it never runs)."""
    twins = {}
    for path in sorted((ROOT / "duckdns").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
                continue
            for cls in node.body:
                if isinstance(cls, ast.ClassDef) and [ast.unparse(b) for b in cls.bases] == [
                    "NamedTuple"
                ]:
                    fields = [s for s in cls.body if isinstance(s, ast.AnnAssign)]
                    twins[path.stem, cls.name] = (
                        tuple(ast.unparse(f.target) for f in fields),
                        {
                            ast.unparse(f.target): ast.literal_eval(f.value)
                            for f in fields
                            if f.value
                        },
                    )
    return twins


def test_each_typed_twin_has_the_fields_of_the_named_tuple_the_run_uses():
    """A named tuple is collections' at run time (typing costs the timer's run 3 ms) and a
    typing.NamedTuple twin for mypy: both must name the same fields, in the same order,
    with the same defaults, or the checker would read another tuple than the one that runs."""
    twins = typed_twins()
    assert len(twins) >= 8, sorted(twins)  # dnswire 3, config 3, router, probe
    for (module, name), (fields, defaults) in twins.items():
        runtime = getattr(importlib.import_module(f"duckdns.{module}"), name)
        assert runtime._fields == fields, (module, name)
        assert runtime._field_defaults == defaults, (module, name)
