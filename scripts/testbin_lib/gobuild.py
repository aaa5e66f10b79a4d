"""Building a tool: a wrapper module that requires the real one (with its local replaces turned into
versions), `go build` of each package, the C programs, and the stamp written last; the CRDs copied
out of their modules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .core import BuildError, CrdSource, Tool, log, tool_error
from .goproxy import check_served, derive_replaces, served_gomod


def stamp_of(tool: Tool) -> str:
    stamp: dict[str, object] = {"module": tool.module, "version": tool.version, "ldflags": tool.ldflags(tool.version)}
    if tool.tags:  # only when set, so the stamps of caches built before stay valid
        stamp["tags"] = tool.tags
    if tool.cgo is not None:
        stamp["cgo"] = list(tool.cgo)
    if tool.c_programs:
        stamp["c"] = [[c.source, c.binary, c.cflags(tool.version)] for c in tool.c_programs]
    return json.dumps(stamp, sort_keys=True)


def is_built(tool: Tool, out: Path) -> bool:
    stamp = out / f".{tool.name}.stamp"
    return (
        stamp.exists()
        and stamp.read_text() == stamp_of(tool)
        and all(os.access(out / b, os.X_OK) for b in tool.binaries)
    )


def run(tool: Tool, step: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    log(f"  {tool.name}: {step} ...")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    last_beat = started
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        if time.monotonic() - last_beat > 30:
            last_beat = time.monotonic()
            log(f"  {tool.name}: {step} still running ({last_beat - started:.0f}s)")
    if proc.wait() != 0:
        raise tool_error(tool, step, "\n" + "\n".join(tail))
    log(f"  {tool.name}: {step} done in {time.monotonic() - started:.0f}s")


def check_c_toolchain(tool: Tool) -> None:
    """cgo and the C programs need a C compiler and the development files they link: say which."""
    if tool.cgo is None and not tool.c_programs:
        return
    if shutil.which("gcc") is None:
        raise tool_error(tool, "checking the C toolchain", "gcc is missing (Debian: apt-get install gcc libc6-dev)")
    for lib in tool.cgo or ():
        proc = subprocess.run(["pkg-config", "--exists", lib], capture_output=True)
        if proc.returncode != 0:
            raise tool_error(tool, "checking the C toolchain",
                             f"the development files of {lib} are missing (Debian: apt-get install {lib}-dev; "
                             "`make system-deps` installs them as root)")


def compile_c(tool: Tool, work: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(["go", "mod", "download", "-json", f"{tool.module}@{tool.version}"], cwd=work, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise tool_error(tool, "locating its module source", (proc.stdout[-1000:] + proc.stderr[-1000:]).strip())
    root = Path(json.loads(proc.stdout)["Dir"])
    for program in tool.c_programs:
        if not (root / program.source).is_file():
            raise tool_error(tool, f"compiling {program.binary}", f"{program.source} is not in the module")
        cmd = ["gcc", *program.cflags(tool.version), "-o", str(work / "bin" / program.binary), str(root / program.source)]
        run(tool, f"compiling {program.binary} from {program.source}", cmd, work, env)


def build(tool: Tool, out: Path) -> None:
    """Build into a work directory, then move the binaries in and write the stamp last.

    A failure anywhere leaves no stamp, so a later run never trusts a half-built tool.
    """
    (out / f".{tool.name}.stamp").unlink(missing_ok=True)
    check_c_toolchain(tool)
    # One module check first: a refused module is one clear line, not the go command's tail.
    replaces = derive_replaces(tool, served_gomod(tool))
    for module, version, why in [(tool.module, tool.version, "the tool's module")] + [
        (m, v, "a derived replace target") for m, v in replaces
    ]:
        if reason := check_served(module, version):
            raise BuildError(tool.name, module, version, f"checking it before the build ({why})", f"not served: {reason}")
    work = out / ".work" / f"{tool.name}-{tool.version}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "bin").mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0" if tool.cgo is None else "1", "GOFLAGS": "-buildvcs=false -mod=mod",
           "GOWORK": "off"}
    lines = [f"module testbin/{tool.name}", "", "go 1.26", ""]
    lines += [f"replace {m} => {m} {v}" for m, v in replaces]
    (work / "go.mod").write_text("\n".join(lines) + "\n")
    imports = "\n".join(f'\t_ "{p}"' for p, _ in tool.packages)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    run(tool, f"resolving {tool.module}@{tool.version}", ["go", "get", f"{tool.module}@{tool.version}"], work, env)
    run(tool, "go mod tidy", ["go", "mod", "tidy", "-e"], work, env)
    tags = ["-tags", tool.tags] if tool.tags else []
    for package, binary in tool.packages:
        (work / "bin" / binary).parent.mkdir(parents=True, exist_ok=True)
        cmd = ["go", "build", "-trimpath", *tags, "-ldflags", tool.ldflags(tool.version), "-o",
               str(work / "bin" / binary), package]
        run(tool, f"compiling {binary} (the first build takes minutes)", cmd, work, env)
    if tool.c_programs:
        compile_c(tool, work, env)
    for binary in tool.binaries:
        target = out / binary
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # left by KUBEBUILDER_ASSETS; never write through it
            target.unlink()
        os.replace(work / "bin" / binary, target)
    (out / f".{tool.name}.stamp").write_text(stamp_of(tool))
    shutil.rmtree(work, ignore_errors=True)


def fetch_crds(out: Path, sources: tuple[CrdSource, ...]) -> None:
    """Copy the CRDs named in the CRD sources from their Go modules into <cache>/crds/."""
    dest = out / "crds"
    stamp = dest / ".stamp"
    want = json.dumps([[s.module, s.version, list(s.files), s.subdir] for s in sources])
    if stamp.exists() and stamp.read_text() == want:
        return
    stamp.unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    for src in sources:
        if reason := check_served(src.module, src.version):
            raise BuildError(src.module, src.module, src.version, "checking the CRD source", f"not served: {reason}")
        log(f"downloading CRDs from {src.module}@{src.version}")
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"{src.module}@{src.version}"], capture_output=True, text=True, env=env,
            cwd=out,
        )
        if proc.returncode != 0:
            detail = (proc.stdout[-1000:] + proc.stderr[-1000:]).strip()
            raise BuildError(src.module, src.module, src.version, "downloading the CRD source", detail)
        root = Path(json.loads(proc.stdout)["Dir"])
        (dest / src.subdir).mkdir(parents=True, exist_ok=True)
        for rel in src.files:
            if not (root / rel).is_file():
                raise BuildError(src.module, src.module, src.version, "copying CRDs", f"{rel} is not in the module")
            shutil.copyfile(root / rel, dest / src.subdir / Path(rel).with_suffix(".yaml").name)  # one suffix
    stamp.write_text(want)
