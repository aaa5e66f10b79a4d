"""Fixtures of the controller tests; the rig itself lives in tests/support/controller_rig.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from tests.support.controller_rig import Rig, make_rig
from tests.support.controlplane import ControlPlane


@pytest.fixture
async def rig(control_plane: ControlPlane, request, caplog) -> AsyncIterator[Rig]:
    # INFO, as in production: every log call really runs (one with a bad field crashed reconciles).
    caplog.set_level(logging.INFO)
    async with make_rig(control_plane, **(getattr(request, "param", {}) or {})) as r:
        yield r
    # A test can pass while the controller crashes behind it and a retry hides the crash.
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert [r.getMessage() for r in records if r.getMessage().endswith("_crashed")] == []
