"""A throwaway certificate authority for tests, made with the openssl command.

Real TLS, no mocks: the updater verifies the test server's certificate against
this CA exactly as it verifies www.duckdns.org against the system store.

Example::

    ca = make_ca(tmp_path / "ca")
    cert, key = ca.issue(tmp_path / "srv", ["localhost", "www.duckdns.org", "127.0.0.1"])
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _san(names: list[str]) -> str:
    parts = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            parts.append(f"IP:{name}")
        except ValueError:
            parts.append(f"DNS:{name}")
    return ",".join(parts)


@dataclass(frozen=True)
class CA:
    """A CA on disk: ``cert_path`` is what clients trust."""

    cert_path: Path
    key_path: Path

    def issue(
        self, directory: Path, names: list[str], days: int = 30, not_before_days_ahead: int = 0
    ) -> tuple[Path, Path]:
        """Issue a server certificate for ``names`` (DNS names or IP addresses).

        ``not_before_days_ahead`` > 0 makes a certificate that is not valid yet,
        which is what a Pi without a real-time clock sees before NTP sync.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = names[0].replace("*", "wildcard").replace(":", "_")
        key = directory / f"{stem}.key"
        csr = directory / f"{stem}.csr"
        cert = directory / f"{stem}.pem"
        ext = directory / f"{stem}.ext"
        ext.write_text(
            f"subjectAltName={_san(names)}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={names[0]}",
        )
        args = [
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.cert_path),
            "-CAkey",
            str(self.key_path),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-extfile",
            str(ext),
            "-days",
            str(days),
        ]
        if not_before_days_ahead:
            return self._issue_future(directory, stem, csr, ext, not_before_days_ahead, days)
        _openssl(*args)
        return cert, key

    def _issue_future(
        self, directory: Path, stem: str, csr: Path, ext: Path, ahead: int, days: int
    ) -> tuple[Path, Path]:
        """Sign with ``openssl ca`` so that notBefore lies ``ahead`` days in the future."""
        import datetime as dt

        db = directory / "index.txt"
        db.write_text("")
        (directory / "serial").write_text("1000\n")
        conf = directory / "ca.cnf"
        conf.write_text(
            "[ca]\ndefault_ca=test\n[test]\n"
            f"database={db}\nserial={directory / 'serial'}\nnew_certs_dir={directory}\n"
            "default_md=sha256\npolicy=any\ncopy_extensions=copy\nunique_subject=no\n"
            "[any]\ncommonName=supplied\n"
        )
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=ahead)
        end = start + dt.timedelta(days=days)
        fmt = "%Y%m%d%H%M%SZ"
        cert = directory / f"{stem}.pem"
        _openssl(
            "ca",
            "-batch",
            "-config",
            str(conf),
            "-cert",
            str(self.cert_path),
            "-keyfile",
            str(self.key_path),
            "-in",
            str(csr),
            "-out",
            str(cert),
            "-extfile",
            str(ext),
            "-startdate",
            start.strftime(fmt),
            "-enddate",
            end.strftime(fmt),
            "-notext",
        )
        return cert, directory / f"{stem}.key"


def make_ca(directory: Path, name: str = "duckdns test CA") -> CA:
    """Create a self-signed CA in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "ca.key"
    cert = directory / "ca.pem"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "30",
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    return CA(cert_path=cert, key_path=key)
