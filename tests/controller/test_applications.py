"""Argo CD Applications gone = preview closed: which previews are woken, and when there is no verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.applications import Applications
from controller.policy import NamespaceView
from foundation import contract


def ns(name: str, app: str | None) -> NamespaceView:
    return NamespaceView(name, "u", datetime.now(UTC), annotations={contract.ANN_ARGOCD_APP: app} if app else {})


PREVIEWS = [ns("pr-1", "argocd/shop-pr-1"), ns("pr-2", "shop-pr-2"), ns("pr-3", "other/shop-pr-3"), ns("pr-4", None)]


def index() -> tuple[Applications, list[str]]:
    woken: list[str] = []
    return Applications("argocd", lambda: PREVIEWS, woken.append), woken


def test_no_verdict_before_the_applications_are_listed() -> None:
    apps, _ = index()
    assert not any(apps.gone(p) for p in PREVIEWS)


def test_a_listing_wakes_the_previews_whose_application_appeared_or_vanished() -> None:
    apps, woken = index()
    apps.on_sync(["shop-pr-1", "shop-pr-2", "unrelated"])
    assert woken == ["pr-1", "pr-2"]
    woken.clear()
    apps.on_sync(["shop-pr-2", "unrelated"])  # a relist after a watch gap: shop-pr-1 went meanwhile
    assert woken == ["pr-1"] and apps.gone(PREVIEWS[0]) and not apps.gone(PREVIEWS[1])


def test_status_updates_of_a_known_application_wake_nothing_a_deletion_wakes_its_preview() -> None:
    apps, woken = index()
    apps.on_sync(["shop-pr-1", "shop-pr-2"])
    woken.clear()
    for _ in range(3):
        apps.on_event("MODIFIED", "shop-pr-1")
    assert woken == []
    apps.on_event("DELETED", "shop-pr-2")
    assert woken == ["pr-2"] and apps.gone(PREVIEWS[1])
    apps.on_event("ADDED", "shop-pr-2")  # recreated (the pull request reopened)
    assert woken == ["pr-2", "pr-2"] and not apps.gone(PREVIEWS[1])


@pytest.mark.parametrize(("preview", "expected"), [(0, "shop-pr-1"), (1, "shop-pr-2"), (2, None), (3, None)])
def test_only_applications_in_the_watched_namespace_count(preview, expected) -> None:
    apps, _ = index()
    apps.on_sync([])
    assert apps.of(PREVIEWS[preview]) == expected
    assert apps.gone(PREVIEWS[preview]) is (expected is not None)
