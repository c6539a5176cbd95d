"""A throwaway certificate authority for tests, made with trustme (Debian's python3-trustme).

Real TLS, no mocks: the updater verifies the test server's certificate against
this CA exactly as it verifies www.duckdns.org against the system store. The CA
comes from trustme, a well-kept library written independently of the code under
test. The server certificates are signed with its key through ``cryptography``
(which trustme uses itself), because trustme's own leaves are valid from
2000-01-01 while a public CA's are valid from shortly before their issue (Let's
Encrypt backdates one hour): a clock a year behind, what a Pi without a
real-time clock can show before NTP sync, must see "not yet valid" as it would
with www.duckdns.org's certificate.

Example::

    ca = make_ca(tmp_path / "ca")
    cert, key = ca.issue(tmp_path / "srv", ["localhost", "www.duckdns.org", "127.0.0.1"])
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class CA:
    """A CA on disk: ``cert_path`` is what clients trust."""

    def __init__(self, directory: Path, name: str) -> None:
        self._ca = trustme.CA(organization_name=name)
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.cert_path))

    def issue(
        self, directory: Path, names: list[str], days: int = 30, not_before_days_ahead: int = 0
    ) -> tuple[Path, Path]:
        """Issue a server certificate for ``names`` (DNS names or IP addresses).

        It is valid from an hour ago for ``days`` days; ``not_before_days_ahead`` > 0
        makes one that is not valid yet. Returns the paths of the certificate (PEM,
        leaf only) and of its key.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = names[0].replace("*", "wildcard").replace(":", "_")
        cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=not_before_days_ahead, hours=-1)
        cert_pem, key_pem = self._sign(names, start, days)
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        return cert, key

    def _sign(self, names: list[str], start: dt.datetime, days: int) -> tuple[bytes, bytes]:
        ca_cert = x509.load_pem_x509_certificate(self._ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self._ca.private_key_pem.bytes(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        san = []
        for name in names:
            try:
                san.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                san.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            # Python 3.13 verifies with VERIFY_X509_STRICT, which refuses a leaf without
            # an Authority Key Identifier (measured on Debian 13); public CAs set both.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def make_ca(directory: Path, name: str = "duckdns test CA") -> CA:
    """Create a self-signed CA whose certificate is ``directory/ca.pem``."""
    return CA(Path(directory), name)
