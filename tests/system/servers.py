"""The test servers inside a booted container: the DuckDNS look-alike."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from containers import TEST_DIR_IN_CONTAINER, Container
from support.helpers import TESTS, run
from support.testca import make_ca


class DuckDNS:
    """tests/support/duckdns_server.py running in the container on 127.0.0.1:443.

    It runs as the transient unit ``duckdns-test-server.service`` inside the container.

    ``www.duckdns.org`` resolves to 127.0.0.1 inside and the test CA is in the
    container's trust store, so the package's default server is this one.
    """

    def __init__(
        self, container: Container, token: str | None = None, domains: list[str] | None = None
    ):
        self.c = container
        self.token = token
        self.domains = domains
        self.running = False
        self.record = container.hostdir / "requests.jsonl"
        self.control = container.hostdir / "control.json"
        self._setup_tls()
        container.defer(self.stop)

    UNIT = "duckdns-test-server.service"  # the first start's; restarts get -2, -3, …

    def _setup_tls(self) -> None:
        hostdir = self.c.hostdir
        ca = make_ca(hostdir / "ca")
        self.cert, self.key = ca.issue(
            hostdir / "srv", ["www.duckdns.org", "localhost", "127.0.0.1"]
        )
        shutil.copy2(TESTS / "support" / "duckdns_server.py", hostdir / "duckdns_server.py")
        self.c.copy_in(ca.cert_path, "/usr/local/share/ca-certificates/duckdns-test-ca.crt")
        hosts = self.c.root / "etc/hosts"
        text = hosts.read_text()
        if "www.duckdns.org" not in text:
            hosts.write_text(text + "127.0.0.1 www.duckdns.org\n")
        if self.c.running:
            self.c.exec(["update-ca-certificates"])
        else:  # before the first boot (start_at_boot): the root as a chroot, offline
            run(["chroot", str(self.c.root), "update-ca-certificates"])
        # The key and certificate are read via the bind mount. The CA's key never reaches
        # the disk (tests/support/testca.py keeps it in memory), so nothing inside can sign.

    def _inside(self, path: Path) -> str:
        return f"{TEST_DIR_IN_CONTAINER}/{path.relative_to(self.c.hostdir)}"

    def _argv(self, ready: Path) -> list[str]:
        args = [
            "python3",
            f"{TEST_DIR_IN_CONTAINER}/duckdns_server.py",
            "--certfile",
            self._inside(self.cert),
            "--keyfile",
            self._inside(self.key),
            "--host",
            "127.0.0.1",
            "--port",
            "443",
            "--record",
            self._inside(self.record),
            "--control",
            self._inside(self.control),
            "--ready-file",
            self._inside(ready),
        ]
        if self.token:
            tokfile = self.c.hostdir / "token"
            tokfile.write_text(self.token + "\n")
            args += ["--token-file", self._inside(tokfile)]
        if self.domains:
            args += ["--domains", ",".join(self.domains)]
        return args

    def start_at_boot(self) -> DuckDNS:
        """Before the container's first boot: the server as a unit of the root, up before
        cloud-init's last stage (which installs the package) at every boot."""
        ready = self.c.hostdir / "server.ready"
        self.c.enable_at_boot(
            self.UNIT,
            self._argv(ready),
            before=("cloud-final.service",),
            ready=f"test -e {self._inside(ready)}",
        )
        self.unit, self.starts, self.running = self.UNIT, 1, True
        return self

    def start(self, token: str | None = None, domains: list[str] | None = None) -> DuckDNS:
        """(Re)start the server; with a token (and domains) it answers KO to others."""
        self.stop()
        if token is not None:
            self.token = token
        if domains is not None:
            self.domains = domains
        ready = self.c.hostdir / "server.ready"
        ready.unlink(missing_ok=True)
        args = self._argv(ready)
        # A transient service inside the container: systemd there starts, reaps and stops
        # it (a process nsenter'd in and orphaned would be a zombie nobody reaps).
        # A new unit name per start: a stopped --collect unit may not be unloaded yet.
        self.starts = getattr(self, "starts", 0) + 1
        self.unit = (
            self.UNIT
            if self.starts == 1
            else self.UNIT.replace(".service", f"-{self.starts}.service")
        )
        self.running = True
        try:
            self.c.serve(self.unit, args, ready.exists, "test DuckDNS server")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.running and self.c.running:
            self.c.exec(["systemctl", "stop", self.unit], check=False, timeout=30)
        self.running = False

    def set_mode(self, mode: str, **extra) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mode": mode, **extra}))
        os.replace(tmp, self.control)

    def requests(self) -> list[dict]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def updates(self) -> list[dict]:
        return [r for r in self.requests() if r["path"] == "/update"]

    def wait_requests(self, n: int, timeout: float) -> list[dict]:
        return self.c.wait_for(
            lambda: len(self.updates()) >= n and self.updates(),
            timeout,
            what=f"{n} update request(s) at the test DuckDNS server",
        )
