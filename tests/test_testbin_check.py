"""scripts/testbin --check and the build's refusal path, against a fake module proxy (no network, no Go).

The fake proxy answers like proxy.golang.org: 200 with the file, 403 "This module version is
not available." for a version it refuses, 404 for a module it never heard of.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.testbin import load_package

APP_MOD = """module example.com/app

go 1.26

require (
\texample.com/app/api/v2 v2.4.0
\texample.com/lib v1.2.3 // indirect
)

require example.com/single v0.1.0

replace example.com/app/api/v2 => ./api/v2

replace (
\texample.com/guard => ./FORBIDDEN_DEPENDENCY
)
"""


class FakeProxy:
    def __init__(self) -> None:
        self.files: dict[str, tuple[int, bytes]] = {}
        self.requests: list[tuple[str, str]] = []

    def serve(self, module: str, version: str, mod: str = "module x\\n") -> None:
        base = f"/{module}/@v/{version}"
        self.files[base + ".info"] = (200, f'{{"Version":"{version}"}}'.encode())
        self.files[base + ".mod"] = (200, mod.encode())
        self.files[base + ".zip"] = (200, b"PK")

    def refuse(self, module: str, version: str, status: int) -> None:
        body = b"This module version is not available." if status == 403 else b"not found"
        for suffix in (".info", ".mod", ".zip"):
            self.files[f"/{module}/@v/{version}{suffix}"] = (status, body)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProxy]:
    fake = FakeProxy()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the script expects of a real proxy

        def _answer(self, with_body: bool) -> None:
            fake.requests.append((self.command, self.path))
            status, body = fake.files.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                try:
                    self.wfile.write(body)
                except BrokenPipeError:  # the client gave up on an error answer: fine
                    pass

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{server.server_address[1]},direct")
    monkeypatch.delenv("PREVIEW_BROKER_TESTBIN_PINS", raising=False)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tb(monkeypatch: pytest.MonkeyPatch):
    module = load_package()
    app = module.core.Tool(name="app", module="example.com/app", version="v1.0.0",
                      packages=(("example.com/app/cmd/app", "app"),), local_replaces="required")
    monkeypatch.setattr(module.catalog, "TOOLS", {"app": app})
    crds = module.core.CrdSource("example.com/crds", "v0.3.0", ("crds/a.yaml",))
    monkeypatch.setattr(module.catalog, "CRD_SOURCES", (crds,))
    return module


def serve_everything(proxy: FakeProxy) -> None:
    proxy.serve("example.com/app", "v1.0.0", APP_MOD)
    proxy.serve("example.com/app/api/v2", "v2.4.0")
    proxy.serve("example.com/lib", "v1.2.3")
    proxy.serve("example.com/single", "v0.1.0")
    proxy.serve("example.com/crds", "v0.3.0")


def test_check_passes_when_every_version_is_served(tb, proxy: FakeProxy, capsys) -> None:
    serve_everything(proxy)
    assert tb.cli.main(["--check", "app", "crds"]) == 0
    err = capsys.readouterr().err
    assert "the proxy serves all 5 module versions" in err
    asked = {path for _, path in proxy.requests}
    # The tool, its replace target and the CRD source whole; plain requirements by their go.mod.
    assert "/example.com/app/api/v2/@v/v2.4.0.zip" in asked and "/example.com/crds/@v/v0.3.0.zip" in asked
    assert "/example.com/lib/@v/v1.2.3.mod" in asked
    assert not any("guard" in path for path in asked)  # a replace the go.mod does not require is never fetched


@pytest.mark.parametrize("status", [403, 404])
def test_check_names_a_refused_replace_target_its_version_and_the_step(tb, proxy: FakeProxy, capsys,
                                                                       status: int) -> None:
    serve_everything(proxy)
    proxy.refuse("example.com/app/api/v2", "v2.4.0", status)
    assert tb.cli.main(["--check", "app"]) == 1
    err = capsys.readouterr().err
    assert "example.com/app/api/v2@v2.4.0 failed at check (app: a derived replace target)" in err
    assert "not served: http://127.0.0.1:" in err and f": {status} " in err
    assert "--pin app=VERSION" in err and "PREVIEW_BROKER_TESTBIN_PINS" in err
    assert "1 of 4 module versions are not served" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("status", [403, 404])
def test_check_names_a_refused_tool_module(tb, proxy: FakeProxy, capsys, status: int) -> None:
    proxy.refuse("example.com/app", "v1.0.0", status)
    assert tb.cli.main(["--check", "app"]) == 1
    err = capsys.readouterr().err
    assert "example.com/app@v1.0.0 failed at fetching its go.mod" in err and f": {status} " in err


def test_check_names_a_refused_plain_requirement_and_a_crd_source(tb, proxy: FakeProxy, capsys) -> None:
    serve_everything(proxy)
    proxy.refuse("example.com/lib", "v1.2.3", 403)
    proxy.refuse("example.com/crds", "v0.3.0", 404)
    assert tb.cli.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "example.com/lib@v1.2.3 failed at check (app: required by its go.mod)" in err
    assert "example.com/crds@v0.3.0 failed at check (crds: the CRD source example.com/crds)" in err
    assert "--pin example.com/crds=VERSION" in err


def test_a_pin_moves_the_check_to_another_version(tb, proxy: FakeProxy, capsys) -> None:
    serve_everything(proxy)
    proxy.refuse("example.com/app", "v1.0.1", 404)
    assert tb.cli.main(["--check", "--pin", "app=v1.0.1", "app"]) == 1
    assert "example.com/app@v1.0.1" in capsys.readouterr().err
    assert tb.cli.main(["--list", "--pin=app=v1.0.1"]) == 0
    assert "example.com/app@v1.0.1" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["app", "app=", "nope=v1.0.0", "app=latest", "app=1.0.0"])
def test_a_bad_pin_is_refused_with_one_line(tb, spec: str) -> None:
    with pytest.raises(SystemExit) as exc:
        tb.cli.main(["--pin", spec, "--check"])
    assert str(exc.value).startswith(f"testbin: bad pin {spec!r}: expected NAME=vX.Y.Z")


def test_a_build_refuses_an_unserved_module_before_running_go_and_leaves_no_stamp(
        tb, proxy: FakeProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_everything(proxy)
    proxy.refuse("example.com/app/api/v2", "v2.4.0", 403)
    (tmp_path / ".app.stamp").write_text("left by an earlier, other build")
    ran: list[list[str]] = []
    monkeypatch.setattr(tb.gobuild.subprocess, "Popen", lambda cmd, **kw: ran.append(cmd))
    with pytest.raises(tb.core.BuildError) as err:
        tb.gobuild.build(tb.catalog.TOOLS["app"], tmp_path)
    assert ("example.com/app/api/v2@v2.4.0 failed at checking it before the build (a derived replace target)"
            in str(err.value))
    assert ran == [] and not (tmp_path / ".app.stamp").exists()


def test_go_mod_blocks_and_comments_are_parsed(tb) -> None:
    requires, replaces = tb.goproxy.parse_gomod(APP_MOD)
    assert requires == {"example.com/app/api/v2": "v2.4.0", "example.com/lib": "v1.2.3",
                        "example.com/single": "v0.1.0"}
    assert replaces == {"example.com/app/api/v2": "./api/v2", "example.com/guard": "./FORBIDDEN_DEPENDENCY"}


def test_module_paths_are_case_encoded_for_the_proxy(tb) -> None:
    assert tb.core.escape("github.com/Azure/go-autorest") == "github.com/!azure/go-autorest"
