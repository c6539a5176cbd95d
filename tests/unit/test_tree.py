"""Rules about the test tree itself."""

from __future__ import annotations

import re

from helpers import TESTS


def test_no_test_imports_from_conftest():
    """Each layer has a conftest.py; ``from conftest import x`` picks whichever was imported
    first when the whole suite runs. Shared code lives in helper modules instead."""
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M)
    ]
    assert offenders == []
