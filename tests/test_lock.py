"""The locks of `make lock` agree with pyproject.toml: every dependency pinned, at a version its
specifier allows, with hashes, its whole closure and nothing stale; the image's lock is the test
lock's runtime part, at the same versions. Offline: the closure is walked through the installed
metadata of the virtualenv `make venv` installed from the test lock."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.locks import (
    BUILD_LOCK,
    GENERATED_BY,
    ROOT,
    RUNTIME_LOCK,
    TEST_LOCK,
    build_requirements,
    declared,
    disagreements,
    read_lock,
)

PYPROJECT = (ROOT / "pyproject.toml").read_text()
LOCKS = {RUNTIME_LOCK: (), TEST_LOCK: ("test",)}  # each lock and the extras it is made with


def _installed_requires(name: str) -> list[str] | None:
    return importlib.metadata.requires(name)


def test_the_virtualenv_is_installed_from_the_test_lock() -> None:
    """What the walk below reads is the metadata of the locked versions themselves."""
    wrong = {}
    for pin in read_lock(TEST_LOCK):
        if pin.applies():
            try:
                version = importlib.metadata.version(pin.name)
            except importlib.metadata.PackageNotFoundError:
                version = None
            if version != pin.version:
                wrong[pin.name] = (pin.version, version)
    assert wrong == {}, "locked vs installed; run `make venv`"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_lock_was_made_by_make_lock_and_hashes_every_pin(lock: Path) -> None:
    assert lock.read_text().startswith(GENERATED_BY)
    pins = read_lock(lock)
    assert pins and [p.name for p in pins if not p.hashes] == []


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_the_lock_is_the_closure_of_pyproject_and_nothing_more(lock: Path) -> None:
    problems = disagreements(declared(PYPROJECT, *LOCKS[lock]), read_lock(lock), _installed_requires)
    assert problems == [], f"{lock.name} disagrees with pyproject.toml; run `make lock`"


def test_the_image_gets_the_versions_the_tests_ran_with() -> None:
    tested = {(p.name, p.marker and str(p.marker)): p for p in read_lock(TEST_LOCK)}
    for pin in read_lock(RUNTIME_LOCK):
        assert tested.get((pin.name, pin.marker and str(pin.marker))) == pin, pin.name


def test_the_build_backend_is_locked_too() -> None:
    assert BUILD_LOCK.read_text().startswith(GENERATED_BY)
    pins = read_lock(BUILD_LOCK)
    assert all(p.hashes for p in pins)
    assert disagreements(build_requirements(PYPROJECT), pins) == []
    assert {p.name for p in pins} == {Requirement(r).name for r in ("setuptools",)}


# The check itself, on copies of pyproject.toml that disagree with the locks.

def _edited(old: str, new: str) -> str:
    assert old in PYPROJECT
    return PYPROJECT.replace(old, new)


def test_a_specifier_the_locked_version_misses_is_named() -> None:
    edited = _edited('"starlette>=0.47"', '"starlette<0.1"')
    problems = disagreements(declared(edited), read_lock(RUNTIME_LOCK), _installed_requires)
    assert len(problems) == 1 and problems[0].startswith("starlette<0.1 (from pyproject.toml) is locked at ")


def test_a_new_dependency_is_named() -> None:
    edited = _edited('"pyyaml>=6",', '"pyyaml>=6", "not-locked-anywhere>=1",')
    problems = disagreements(declared(edited), read_lock(RUNTIME_LOCK), _installed_requires)
    assert problems == ["not-locked-anywhere>=1 (from pyproject.toml) is not in the lock"]


def test_an_extra_s_dependencies_are_part_of_the_closure() -> None:
    """uvicorn[standard] again would want websockets, watchfiles and python-dotenv in the image."""
    edited = _edited('"uvicorn>=0.30"', '"uvicorn[standard]>=0.30"')
    problems = disagreements(declared(edited), read_lock(RUNTIME_LOCK), _installed_requires)
    missing = {p.split(";")[0].split(">")[0].split("=")[0].strip() for p in problems}
    assert {"websockets", "watchfiles", "python-dotenv"} <= missing, problems


def test_a_dependency_dropped_from_pyproject_leaves_a_stale_pin() -> None:
    edited = _edited('"prometheus-client>=0.20",', "")  # nothing else requires it
    problems = disagreements(declared(edited), read_lock(RUNTIME_LOCK), _installed_requires)
    assert len(problems) == 1 and problems[0].startswith("prometheus-client==")
    assert problems[0].endswith("is in the lock but nothing requires it")
