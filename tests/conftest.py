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
    """Under pytest-xdist (make test: -n 2 --dist loadgroup) a group is one unit of work,
    run in order on one worker; xdist hands the units out in collection order, the first
    two to one worker each, the next to whichever worker has (almost) nothing left.

    * "package": tests/package, first; its worker then takes the unit tests, module by
      module, and then the late system work (tests/system/conftest.py's LATE_ORDER);
    * "serial": tests/system, in their order (tests/system/conftest.py), on the other
      worker: they share booted containers, cached roots and the background builds;
    * the late system work, groups given in tests/system: test_releases.py's run of the
      unit tests in the other release's root, then two groups of late files that share
      nothing with "serial" but caches, whose builds are under file locks (either
      worker may build one or wait for the other's build). Whichever worker runs out of
      work first takes the next of them.
    """
    for item in items:
        layer = Path(str(item.fspath)).parent.name
        if layer in ("package", "system") and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("serial" if layer == "system" else layer))


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
