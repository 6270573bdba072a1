"""A real RFC 3161 timestamp authority on 127.0.0.1: `openssl ts -reply`
behind a small HTTP server, with a TSA certificate made here. Apple's
timestamp server cannot be reached from the test machines; this one answers
the same protocol."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from conftest import serving
from signing_certs import self_signed

CONFIG = """\
[ tsa ]
default_tsa = local
[ local ]
dir = {root}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha1, sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _write_identity(root: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, cert = self_signed("Toolkit Test TSA", 30, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]))
    (root / "tsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "tsa.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (root / "serial").write_text("01\n")
    (root / "tsa.cnf").write_text(CONFIG.format(root=root))


@contextmanager
def timestamp_authority() -> Iterator[tuple[str, list[bytes]]]:
    """(URL, the requests it answered), for the duration."""
    answered: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="tsa-") as tmp:
        root = Path(tmp)
        _write_identity(root)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with tempfile.TemporaryDirectory(dir=root) as work:
                    (Path(work) / "query.tsq").write_bytes(query)
                    done = subprocess.run(
                        ["openssl", "ts", "-reply", "-config", str(root / "tsa.cnf"),
                         "-queryfile", str(Path(work) / "query.tsq"), "-out", str(Path(work) / "reply.tsr")],
                        capture_output=True,
                        check=False,
                    )  # fmt: skip
                    if done.returncode != 0:
                        self.send_error(500, done.stderr.decode(errors="replace")[:200])
                        return
                    reply = (Path(work) / "reply.tsr").read_bytes()
                answered.append(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        with serving(Handler) as url:
            yield f"{url}/", answered
