"""EXTRA_CA_CERTS: the components' own https calls (IdP, GitHub, S3) trust a private CA besides the
public ones, against real TLS servers whose certificates only that CA signed; a bad file fails at
start-up in one line naming the setting."""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import httpx
import pytest

from broker.providers.base import http_client, oauth_client
from broker.settings import BrokerSettings
from controller.settings import ControllerSettings
from foundation.config import ConfigError, load
from foundation.trust import botocore_bundle, client_verify
from tests.support.brokerunit import make_settings
from tests.support.tls import Certs, make_certs

SETTING = "PREVIEW_BROKER_EXTRA_CA_CERTS"
BROKER_ENV = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_PROVIDER": "github",
    "PREVIEW_BROKER_CLIENT_ID": "Iv1.abc",
    "PREVIEW_BROKER_CLIENT_SECRET": "s",
    "PREVIEW_BROKER_SECRET_KEYS": "k" * 40,
    "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com",
    "PREVIEW_BROKER_GITHUB_ORGS": "acme",
}
CONTROLLER_ENV = {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
                  "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("ca"), ["localhost"])


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_url(certs: Certs) -> Iterator[str]:
    """An https server (standing in for a private issuer or GitHub Enterprise) with a certificate of the
    test CA, which no public bundle holds."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.cert_file, certs.key_file)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# --- start-up: a bad file is one line naming the setting ------------------------------------------

def _bad_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "empty.pem").write_text("")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")
    (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
    (tmp_path / "der.crt").write_bytes(b"\x30\x82\x01\x0a\xff\xfe\x00")
    return {
        "missing": (str(tmp_path / "nope.pem"), "cannot read"),
        "directory": (str(tmp_path / "dir"), "cannot read"),
        "empty": (str(tmp_path / "empty.pem"), "holds no PEM certificate"),
        "a key, not a certificate": (str(tmp_path / "key.pem"), "holds no PEM certificate"),
        "broken base64": (str(tmp_path / "broken.pem"), "OpenSSL cannot read"),
        "DER": (str(tmp_path / "der.crt"), "not a PEM file"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "a key, not a certificate", "broken base64", "DER"])
@pytest.mark.parametrize(("model", "env"), [(BrokerSettings, BROKER_ENV), (ControllerSettings, CONTROLLER_ENV)],
                         ids=["broker", "controller"])
def test_a_bad_ca_file_stops_start_up_in_one_line_naming_the_setting(tmp_path, case, model, env) -> None:
    path, message = _bad_files(tmp_path)[case]
    with pytest.raises(ConfigError) as err:
        load(model, {**env, SETTING: path})
    assert err.value.setting == SETTING
    assert message in err.value.message and "\n" not in str(err.value)


def test_unset_keeps_the_libraries_defaults(certs: Certs) -> None:
    settings = load(BrokerSettings, BROKER_ENV)
    assert settings.extra_ca_certs == ""
    assert client_verify("") is True  # httpx's default: certifi, or SSL_CERT_FILE
    assert botocore_bundle("") is None  # botocore's default


def test_the_extra_cas_are_added_to_the_public_ones_not_instead(certs: Certs, tmp_path, monkeypatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    public = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()["x509_ca"]
    ctx = client_verify(str(certs.ca_file))
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.cert_store_stats()["x509_ca"] == public + 1
    text = Path(botocore_bundle(str(certs.ca_file), str(tmp_path)) or "").read_text()
    assert text.startswith(Path(certifi.where()).read_text().rstrip("\n"))
    assert text.endswith(certs.ca_file.read_text())


def test_the_libraries_own_variables_still_choose_the_base_set(certs: Certs, tmp_path, monkeypatch) -> None:
    """SSL_CERT_FILE (httpx) and AWS_CA_BUNDLE (botocore) replace the public set as they always did;
    the extra CAs come on top of whatever they chose."""
    other = make_certs(tmp_path / "other", ["other.test"])
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca_file))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(other.ca_file))
    ctx = client_verify(str(certs.ca_file))
    assert isinstance(ctx, ssl.SSLContext) and ctx.cert_store_stats()["x509_ca"] == 2
    bundle = Path(botocore_bundle(str(certs.ca_file), str(tmp_path)) or "")
    assert bundle.parent == tmp_path
    assert bundle.read_text() == other.ca_file.read_text() + certs.ca_file.read_text()
    # A restart (same pod, same emptyDir) reuses the file instead of filling the directory.
    assert botocore_bundle(str(certs.ca_file), str(tmp_path)) == str(bundle)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("preview-broker-ca-")) == [bundle.name]


# --- the calls themselves, against a server only the extra CA vouches for -------------------------

async def test_the_brokers_idp_clients_trust_the_extra_ca_and_only_with_it(certs: Certs, https_url: str) -> None:
    without, with_ca = make_settings(), make_settings(extra_ca_certs=str(certs.ca_file))
    plain = (lambda s: http_client(s), {})
    authlib = (lambda s: oauth_client(s, "client_secret_basic"), {"withhold_token": True})  # the code exchanger
    for make, kwargs in (plain, authlib):
        async with make(without) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.request("GET", f"{https_url}/.well-known/openid-configuration", **kwargs)
        async with make(with_ca) as client:
            r = await client.request("GET", f"{https_url}/.well-known/openid-configuration", **kwargs)
            assert r.json() == {"path": "/.well-known/openid-configuration"}


async def test_the_broker_app_uses_it_for_the_identity_provider(certs: Certs, https_url: str) -> None:
    """Through the app's own wiring: the trusting transport inside the metrics' timed one."""
    from broker.app import create_app

    app = create_app(make_settings(extra_ca_certs=str(certs.ca_file)))
    timed = app.broker.metrics.upstream.seconds.labels("idp")
    before = timed._sum.get(), sum(b.get() for b in timed._buckets)
    r = await app.broker.provider._http.get(f"{https_url}/keys")  # the client discovery and JWKS go through
    assert r.json() == {"path": "/keys"}
    assert sum(b.get() for b in timed._buckets) == before[1] + 1 and timed._sum.get() > before[0]
    await app.broker.provider.aclose()


async def test_the_controllers_github_client_and_bucket_janitor_trust_it(certs: Certs, https_url: str,
                                                                        tmp_path, monkeypatch) -> None:
    from controller.buckets import BucketJanitor
    from controller.deployments import DeploymentReporter
    from controller.main import build_extensions
    from controller.reconciler import Controller

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR: the bundle lands in the test's directory
    settings = ControllerSettings.model_validate({
        "preview_domains": ["preview.example.com"], "public_url": "https://auth.preview.example.com",
        "github_token": "ghp_test", "github_api_url": https_url, "bucket_enabled": True,
        "extra_ca_certs": str(certs.ca_file)})
    extensions = build_extensions(settings, None, Controller(None, settings), None)  # type: ignore[arg-type]
    reporter = next(e for e in extensions if isinstance(e, DeploymentReporter))
    r = await reporter.client.http.get(f"{https_url}/repos/acme/shop/deployments")
    assert r.json() == {"path": "/repos/acme/shop/deployments"}
    await reporter.client.http.aclose()
    janitor = next(e for e in extensions if isinstance(e, BucketJanitor))
    assert janitor.ca_bundle is not None and Path(janitor.ca_bundle).parent == tmp_path
    assert Path(janitor.ca_bundle).read_text().endswith(certs.ca_file.read_text())


async def test_s3_calls_trust_the_extra_ca_through_the_bundle(certs: Certs, tmp_path) -> None:
    """A real S3 API (moto) over https with the private CA's certificate: botocore refuses it by
    default and accepts it with the bundle the janitor is given."""
    from aiobotocore.session import get_session
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.cert_file, certs.key_file)
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                         request_handler=MotoRequestHandler, ssl_context=tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"https://127.0.0.1:{server.server_address[1]}"
    from aiobotocore.config import AioConfig

    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1",
             "config": AioConfig(retries={"max_attempts": 1})}  # a refused certificate is not worth retrying
    session = get_session()
    try:
        async with session.create_client("s3", endpoint_url=endpoint, **creds) as s3:
            with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
                await s3.list_buckets()
        bundle = botocore_bundle(str(certs.ca_file), str(tmp_path))
        async with session.create_client("s3", endpoint_url=endpoint, verify=bundle, **creds) as s3:
            name = f"trust-{uuid.uuid4().hex[:8]}"  # moto's store is per process: other tests' buckets are there too
            await s3.create_bucket(Bucket=name)
            assert name in [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
    finally:
        server.shutdown()
