"""Development certificate authority and party certificates for mutual TLS.

``init_ca`` makes a self-signed CA; ``issue`` makes a certificate for one party, whose
common name and DNS subject-alternative name are the party's name (peers check it), plus
the listen hosts given. Private keys are written with mode 0600. For production, use the
institution's own PKI: privfin only needs a CA file, a certificate and its key per party.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privfin.errors import ConfigError

CA_CERT, CA_KEY = "ca.crt", "ca.key"


@dataclass(frozen=True)
class TLSFiles:
    """Paths of one party's TLS material."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """``(ca, cert, key)`` bytes; a one-line error naming a missing file."""
        out = []
        for name, path in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            try:
                out.append(Path(path).read_bytes())
            except OSError as exc:
                raise ConfigError(f"cannot read TLS file: {exc.strerror}", key=f"tls.{name}", file=str(path)) from exc
        return out[0], out[1], out[2]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_ca(directory: Path, name: str = "privfin development CA", days: int = 3650,
            overwrite: bool = False) -> Path:
    """Create ``ca.key`` and ``ca.crt`` in ``directory``; refuses to overwrite unless asked."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CA_KEY).exists() and not overwrite:
        raise ConfigError("a CA already exists here; pass overwrite to replace it", file=str(directory / CA_KEY))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_private(directory / CA_KEY, _pem_key(key))
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


def issue(directory: Path, party: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
          days: int = 825, ca_dir: Path | None = None) -> TLSFiles:
    """Issue ``<party>.crt`` / ``<party>.key`` in ``directory``, signed by the CA in ``ca_dir``."""
    directory, ca_dir = Path(directory), Path(ca_dir or directory)
    if not party or any(c in party for c in "/\\ \t"):
        raise ConfigError(f"invalid party name {party!r}", key="name")
    try:
        ca_key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    except OSError as exc:
        raise ConfigError("no CA here: run `privfin certs init` first", file=str(ca_dir / CA_KEY)) from exc
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(party)]
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if h != party:
                sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    _write_private(directory / f"{party}.key", _pem_key(key))
    (directory / f"{party}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TLSFiles(ca_dir / CA_CERT, directory / f"{party}.crt", directory / f"{party}.key")
