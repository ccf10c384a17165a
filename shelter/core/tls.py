"""The node's own certificate authority and server certificate, made on first start.

Tablets need HTTPS for the camera. With no internet there is no public CA to ask, so the
node makes a small CA of its own (kept in the data directory), and a server certificate
signed by it for every name and LAN address the machine answers on. Staff install the CA
once per tablet (see /trust); the server certificate is re-made when the addresses change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shelter.core import atrest


def ca_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls" / "ca.crt", data_dir / "tls" / "ca.key"


def server_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls" / "server.crt", data_dir / "tls" / "server.key"


def local_addresses() -> list[str]:
    """This machine's own IP addresses, read locally (no packet is sent anywhere)."""
    found: set[str] = {"127.0.0.1", "::1"}
    try:
        text = Path("/proc/net/fib_trie").read_text()
        found.update(re.findall(r"\|-- (\d+\.\d+\.\d+\.\d+)\n\s+/32 host LOCAL", text))
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("fe80"))


def lan_addresses() -> list[str]:
    return [a for a in local_addresses()
            if not ipaddress.ip_address(a).is_loopback and ":" not in a]


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    atrest.private_dir(path.parent)
    atrest.write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def ensure_ca(data_dir: Path, shelter_name: str) -> Path:
    """Make the certificate authority if it is missing; never touches the server's files
    (gunicorn reads them for every new connection)."""
    ca_cert_path, ca_key_path = ca_paths(data_dir)
    now = dt.datetime.now(dt.UTC)
    if not ca_cert_path.exists() or not ca_key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shelter node"),
                          x509.NameAttribute(NameOID.COMMON_NAME,
                                             f"Shelter CA {shelter_name}"[:64])])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        _write_key(ca_key_path, key)
        # Public, but in the data directory, where every file is 0600 (shelter/core/atrest.py):
        # tablets get it from the node over HTTP, never from the disk.
        atrest.write_private(ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return ca_cert_path


def ensure_certificates(data_dir: Path, shelter_name: str) -> tuple[Path, Path]:
    """Make the CA if missing and a server certificate covering today's addresses."""
    ca_cert_path = ensure_ca(data_dir, shelter_name)
    _, ca_key_path = ca_paths(data_dir)
    now = dt.datetime.now(dt.UTC)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)

    host = socket.gethostname()
    names = sorted({"localhost", host, f"{host}.local"})
    addresses = local_addresses()
    wanted = hashlib.sha256(repr((names, addresses)).encode()).hexdigest()[:16]
    cert_path, key_path = server_paths(data_dir)
    stamp = data_dir / "tls" / "server.names"
    if cert_path.exists() and key_path.exists() and stamp.exists() \
            and stamp.read_text() == wanted:
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if current.not_valid_after_utc > now + dt.timedelta(days=30):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in names] + \
          [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            # Apple devices refuse server certificates valid for more than 825 days.
            .not_valid_after(now + dt.timedelta(days=800))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    # Written beside and renamed into place: a server reading them never sees half a file.
    new_key, new_cert = key_path.with_suffix(".key.new"), cert_path.with_suffix(".crt.new")
    _write_key(new_key, key)
    atrest.write_private(new_cert, cert.public_bytes(serialization.Encoding.PEM)
                         + ca_cert.public_bytes(serialization.Encoding.PEM))
    os.replace(new_key, key_path)
    os.replace(new_cert, cert_path)
    atrest.write_private(stamp, wanted.encode())
    return cert_path, key_path
