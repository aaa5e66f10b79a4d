"""Which certificate authorities the components trust on their own https calls: the identity
provider (broker), GitHub and S3 (controller).

By default that is what the libraries ship: certifi's public CAs (or SSL_CERT_FILE, which httpx
honours and which *replaces* them). A private issuer, a GitHub Enterprise server or an S3-compatible
store behind an internal CA needs its CA trusted *as well*: EXTRA_CA_CERTS names a PEM file whose
certificates are added to the default set, never instead of it. The Kubernetes API is not affected:
its CA comes from the service account (or the kubeconfig).
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from pathlib import Path
from typing import Annotated

import httpx
from pydantic import AfterValidator

PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def check_ca_file(path: str) -> str:
    """A readable PEM file holding at least one certificate that OpenSSL accepts, or a ValueError
    the settings loader turns into one line naming EXTRA_CA_CERTS. Checked at start-up so a wrong
    mount fails there, not at the first login."""
    path = path.strip()
    if not path:
        return ""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a PEM file (binary content; DER certificates must be converted)") from None
    if PEM_BEGIN not in text:
        raise ValueError(f"{path} holds no PEM certificate (expected {PEM_BEGIN} blocks)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cadata=text)
    except ssl.SSLError as exc:
        raise ValueError(f"{path} has a certificate OpenSSL cannot read: {exc.reason or exc}") from None
    return path


CAFile = Annotated[str, AfterValidator(check_ca_file)]


def client_verify(extra_ca_file: str) -> ssl.SSLContext | bool:
    """`verify=` for an httpx client or transport: True keeps httpx's own default; with extra CAs,
    that very default (built by httpx, so SSL_CERT_FILE still counts) plus the extra file.
    Build it once per process: loading the default bundle takes milliseconds."""
    if not extra_ca_file:
        return True
    ctx = httpx.create_ssl_context()
    ctx.load_verify_locations(cafile=extra_ca_file)
    return ctx


def botocore_bundle(extra_ca_file: str, directory: str | None = None) -> str | None:
    """`verify=` for an aiobotocore client: None keeps botocore's default; with extra CAs, the path of
    a bundle file holding botocore's default set (AWS_CA_BUNDLE, else certifi's) and then the extra
    file. botocore takes a file path only and would trust nothing but that file, hence the copy
    (written to the temporary directory, an emptyDir in the chart)."""
    if not extra_ca_file:
        return None
    import certifi

    base = os.environ.get("AWS_CA_BUNDLE") or certifi.where()
    text = Path(base).read_text().rstrip("\n") + "\n" + Path(extra_ca_file).read_text()
    # Named by content: a restarted container (same pod, same emptyDir) reuses the file, not adds one.
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(directory or tempfile.gettempdir()) / f"preview-broker-ca-{digest}.pem"
    if not path.exists():
        fd, partial = tempfile.mkstemp(prefix=".preview-broker-ca-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(partial, path)  # whole or absent, never half-written
    return str(path)
