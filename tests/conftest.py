"""Fixtures shared by every test layer: the test CA and the test DuckDNS server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support.duckdns_server import DuckDNSServer
from support.helpers import CANARY
from support.testca import CA, make_ca


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (make test: -n 2 --dist loadgroup), the package and system tests
    run one after the other on one worker, in their order (they share booted containers,
    cached roots and the background builds of tests/system), the unit tests beside them."""
    for item in items:
        if Path(str(item.fspath)).parent.name in ("package", "system"):
            item.add_marker(pytest.mark.xdist_group("serial"))


# DUCKDNS_TEST_TIMELINE=/path: every test's start and end (wall clock) and worker appended
# there, with the system tests' phase lines (tests/system/roots.py's log): where the time
# of a run goes, per worker (docs/testing.md). Off by default.
TIMELINE = os.environ.get("DUCKDNS_TEST_TIMELINE")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not TIMELINE:
        yield
        return
    start = time.time()
    yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
    with open(TIMELINE, "a") as out:
        out.write(
            f"{time.strftime('%H:%M:%S', time.localtime(start))} "
            f"{time.strftime('%H:%M:%S')} {time.time() - start:7.1f}s {worker} {item.nodeid}\n"
        )


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> CA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def server_cert(test_ca, tmp_path_factory) -> tuple[Path, Path]:
    return test_ca.issue(tmp_path_factory.mktemp("srv"), ["localhost", "127.0.0.1", "::1"])


@pytest.fixture
def duck(server_cert):
    """A fresh DuckDNS test server that accepts only CANARY for 'piserver' and 'cloud'."""
    cert, key = server_cert
    with DuckDNSServer(cert, key, token=CANARY, domains=["piserver", "cloud"]) as srv:
        yield srv
