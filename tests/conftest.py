"""Fixtures shared by every test layer: the test CA and the test DuckDNS server."""

from __future__ import annotations

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
