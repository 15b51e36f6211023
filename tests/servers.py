"""Self-signed certificates for the tests' HTTPS servers (browsers told to skip certificate checks reach
them by any name)."""

import ssl
import subprocess
import tempfile
from pathlib import Path


def self_signed(hosts: tuple[str, ...]) -> ssl.SSLContext:
    """A server TLS context with a new self-signed certificate for ``hosts`` (openssl makes it)."""
    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        names = ",".join(f"IP:{host}" if host[0].isdigit() else f"DNS:{host}" for host in hosts)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
             "-out", str(cert), "-subj", f"/CN={hosts[0]}", "-addext", f"subjectAltName={names}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    return context
