"""--check: what a build would fetch, asked of the module proxy without building."""

from __future__ import annotations

import concurrent.futures
import sys
import time

from . import catalog
from .core import BuildError, Tool, log
from .goproxy import check_served, derive_replaces, parse_gomod, served_gomod


def fetch_plan(tool: Tool) -> list[tuple[str, str, str]]:
    """(module, version, why) for every module version a build of `tool` fetches."""
    gomod = served_gomod(tool)
    replaces = dict(derive_replaces(tool, gomod))
    requires, _ = parse_gomod(gomod)
    plan = [(tool.module, tool.version, "the tool's module")]
    plan += [(m, v, "a derived replace target") for m, v in replaces.items()]
    plan += [(m, v, "required by its go.mod") for m, v in requires.items() if m not in replaces]
    return plan


def check(names: list[str], pins: dict[str, str]) -> int:
    started = time.monotonic()
    jobs: list[tuple[str, str, str, str]] = []  # (step, name, module, version)
    problems: list[str] = []
    for name in names:
        if name == "crds":
            for src in catalog.crd_sources(pins):
                jobs.append((f"crds: the CRD source {src.module}", "crds", src.module, src.version))
            continue
        tool = catalog.tools(pins)[name]
        try:
            for module, version, why in fetch_plan(tool):
                jobs.append((f"{name}: {why}", name, module, version))
        except BuildError as exc:
            problems.append(str(exc))
    seen: set[tuple[str, str, bool]] = set()  # kube and kube-node share one module graph: ask once
    unique = []
    for job in jobs:
        key = (job[2], job[3], "required" not in job[0])
        if key not in seen:
            seen.add(key)
            unique.append(job)
    jobs = unique
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda job: check_served(job[2], job[3], "required" not in job[0]), jobs))
    for (step, name, module, version), reason in zip(jobs, results):
        if reason is not None:
            pin_name = module if name == "crds" else name
            problems.append(str(BuildError(pin_name, module, version, f"check ({step})", f"not served: {reason}")))
    took = time.monotonic() - started
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        log(f"check: {len(problems)} of {len(jobs)} module versions are not served ({took:.1f}s)")
        return 1
    log(f"check: the proxy serves all {len(jobs)} module versions a build of {', '.join(names)} fetches ({took:.1f}s)")
    return 0
