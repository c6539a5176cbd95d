"""Fixtures shared by every test layer: the test CA and the test DuckDNS server."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.duckdns_server import DuckDNSServer
from support.helpers import CANARY
from support.testca import CA, make_ca


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
