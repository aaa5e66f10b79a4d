"""When a preview ends: TTL from its last activity, pull-request close, grace, dry run (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.lifetime import PullRequest, activity, closed, lifetime
from controller.policy import NamespaceView, plan, standing
from controller.settings import ControllerSettings
from foundation import contract

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
SHA1, SHA2 = "1" * 40, "2" * 40
REPO = "acme/shop"


def settings(**kw) -> ControllerSettings:
    return ControllerSettings.model_validate({"preview_domains": ["preview.example.com"],
                                              "public_url": "https://auth.preview.example.com",
                                              # the closed pull requests these tests see come from GitHub lookups
                                              "github_token": "ghp_test", **kw})


def ns(annotations=None, labels=None, deleting=False) -> NamespaceView:
    return NamespaceView("pr-1", "uid-1", T0, deleting, labels or {}, annotations or {})


def pr(state="open", sha=SHA1, merged=False) -> PullRequest:
    return PullRequest(REPO, "1", state, merged, sha)


@pytest.mark.parametrize(
    ("sha", "recorded", "expected"),
    [
        ("", None, None),  # nothing known about commits
        (SHA1, None, {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}),  # the first commit counts from creation
        (SHA1, {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}, {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}),
        (SHA2, {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}, {"sha": SHA2, "at": "2026-11-29T12:00:00Z"}),  # a push
        ("", {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}, {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}),  # kept
    ],
)
def test_activity_is_the_last_head_commit_and_when_it_was_first_seen(sha, recorded, expected) -> None:
    assert activity(T0, sha, recorded, T0 + 24 * H) == expected


@pytest.mark.parametrize(
    ("labels", "annotations", "recorded", "default", "expected"),
    [
        ({}, {}, None, None, None),
        ({}, {}, None, 3600.0, T0 + H),
        ({}, {contract.ANN_TTL: "72h"}, None, 3600.0, T0 + 72 * H),
        # a new head commit 10 h in: the TTL counts from then
        ({}, {contract.ANN_TTL: "72h", contract.ANN_GITHUB_SHA: SHA2}, {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}, None,
         T0 + 82 * H),
        ({}, {contract.ANN_GITHUB_SHA: SHA1}, {"sha": SHA1, "at": "2026-11-28T22:00:00Z"}, 3600.0, T0 + 11 * H),
        # expires-at is absolute: activity does not move it
        ({}, {contract.ANN_EXPIRES_AT: "2026-12-01T00:00:00Z", contract.ANN_GITHUB_SHA: SHA2},
         {"sha": SHA1, "at": "2026-11-28T12:00:00Z"}, 3600.0, datetime(2026, 12, 1, tzinfo=UTC)),
        ({contract.LABEL_KEEP: "true"}, {contract.ANN_TTL: "1h"}, None, 3600.0, None),
        ({}, {contract.ANN_TTL: "soon"}, None, 60.0, T0 + timedelta(seconds=60)),
    ],
)
def test_ttl_counts_from_the_last_activity(labels, annotations, recorded, default, expected) -> None:
    life = lifetime(created=T0, labels=labels, annotations=annotations, recorded_activity=recorded, pr=None,
                    default_ttl=default, now=T0 + 10 * H)
    assert life.expires_at == expected


def test_github_head_commit_counts_when_the_namespace_names_none() -> None:
    life = lifetime(created=T0, labels={}, annotations={}, recorded_activity={"sha": SHA1, "at": "2026-11-28T12:00:00Z"},
                    pr=pr(sha=SHA2), default_ttl=3600.0, now=T0 + 5 * H)
    assert life.activity == {"sha": SHA2, "at": "2026-11-28T17:00:00Z"} and life.expires_at == T0 + 6 * H


@pytest.mark.parametrize(("annotation", "reason"), [(contract.ANN_TTL, "InvalidTTL"), (contract.ANN_EXPIRES_AT, "InvalidExpiry")])
def test_unreadable_lifetime_annotations_warn(annotation, reason) -> None:
    life = lifetime(created=T0, labels={}, annotations={annotation: "soon"}, recorded_activity=None, pr=None,
                    default_ttl=None, now=T0)
    assert life.warning is not None and (life.warning.type, life.warning.reason) == ("Warning", reason)


CLOSED_AT = {"reason": "pull request acme/shop#1 was closed", "at": "2026-11-28T12:00:00Z"}


@pytest.mark.parametrize(
    ("state", "app_gone", "recorded", "expected"),
    [
        (None, False, None, None),
        (pr("open"), False, None, None),
        (pr("closed"), False, None, {"reason": "pull request acme/shop#1 was closed", "at": "2026-11-28T13:00:00Z"}),
        (pr("closed", merged=True), False, None,
         {"reason": "pull request acme/shop#1 was merged", "at": "2026-11-28T13:00:00Z"}),
        (None, True, None, {"reason": "Argo CD Application argocd/shop-pr-1 is gone", "at": "2026-11-28T13:00:00Z"}),
        (pr("closed"), False, CLOSED_AT, CLOSED_AT),  # the first sighting's time is kept (the grace counts from it)
        (None, False, CLOSED_AT, CLOSED_AT),  # not looked up again since a restart: still closed
        (pr("open"), False, CLOSED_AT, None),  # reopened
    ],
)
def test_closed_when_github_says_so_or_the_application_is_gone(state, app_gone, recorded, expected) -> None:
    assert closed(pr=state, application="argocd/shop-pr-1", application_gone=app_gone, recorded=recorded,
                  now=T0 + H) == expected


# --- the plan of a closed, expired or dry-run preview ------------------------------------------------

def _plan(n, *, now, current=None, state=None, app_gone=False, **kw):
    s = settings(**kw)
    st = standing(n, current=current, pr=state, application_gone=app_gone, settings=s, now=now)
    return plan(n, hosts=["pr-1.preview.example.com"], refused=[], current=current, observed={},
                settings=s, now=now, standing=st)


def test_a_closed_preview_loses_its_hosts_at_once_and_its_namespace_after_the_grace() -> None:
    n = ns(annotations={contract.ANN_GITHUB_REPO: REPO})
    first = _plan(n, now=T0, state=pr("closed"))
    assert first.status["phase"] == "Closed" and first.status["allowedHosts"] == []
    assert first.status["closed"] == {"reason": "pull request acme/shop#1 was closed", "at": "2026-11-28T12:00:00Z"}
    assert not first.delete_namespace and first.requeue_after == pytest.approx(600)  # CLOSED_GRACE 10m
    assert [(e.type, e.reason) for e in first.events] == [("Normal", "Closed")]
    later = _plan(n, now=T0 + timedelta(minutes=10), current=first.status)  # after a restart: nothing looked up
    assert later.delete_namespace and [e.reason for e in later.events] == ["Deleting"]


def test_closed_action_revoke_keeps_the_namespace() -> None:
    p = _plan(ns(), now=T0 + 24 * H, state=pr("closed"), closed_action="revoke")
    assert p.status["phase"] == "Closed" and not p.delete_namespace and p.requeue_after is None


def test_a_closed_preview_stays_closed_even_after_a_new_commit() -> None:
    """Close wins over activity: a push to a closed pull request does not bring its preview back."""
    p = _plan(ns(annotations={contract.ANN_GITHUB_SHA: SHA2}), now=T0, state=pr("closed", sha=SHA2), default_ttl="1h",
              current={"phase": "Ready", "activity": {"sha": SHA1, "at": "2026-11-28T11:00:00Z"}})
    assert p.status["phase"] == "Closed"


def test_a_new_commit_revives_an_expired_preview() -> None:
    n = ns(annotations={contract.ANN_TTL: "1h", contract.ANN_GITHUB_SHA: SHA1})
    expired = _plan(n, now=T0 + 2 * H)
    assert expired.status["phase"] == "Expired" and expired.status["allowedHosts"] == []
    pushed = ns(annotations={contract.ANN_TTL: "1h", contract.ANN_GITHUB_SHA: SHA2})
    revived = _plan(pushed, now=T0 + 3 * H, current=expired.status)
    assert revived.status["phase"] == "Ready" and revived.status["allowedHosts"] == ["pr-1.preview.example.com"]
    assert revived.status["expiresAt"] == "2026-11-28T16:00:00Z" and revived.requeue_after == pytest.approx(3600)


@pytest.mark.parametrize(
    ("kw", "state", "why"),
    [
        ({"expiry_action": "delete", "default_ttl": "1h"}, None, "expired at 2026-11-28T13:00:00Z"),
        ({"closed_grace": "0s"}, pr("closed"), "pull request acme/shop#1 was closed"),
    ],
    ids=["expired", "closed"],
)
def test_dry_run_deletes_nothing_and_says_what_it_would_delete_once(kw, state, why) -> None:
    p = _plan(ns(), now=T0 + 2 * H, state=state, dry_run=True, **kw)
    assert not p.delete_namespace
    assert p.status["dryRun"] == f"would delete namespace pr-1: {why}"
    assert ("Normal", "DryRun", p.status["dryRun"]) in [(e.type, e.reason, e.message) for e in p.events]
    again = _plan(ns(), now=T0 + 3 * H, current=p.status, state=state, dry_run=True, **kw)
    assert not again.delete_namespace and again.events == []  # said once, not on every resync
    real = _plan(ns(), now=T0 + 3 * H, current=p.status, state=state, **kw)
    assert real.delete_namespace and real.status["dryRun"] is None  # DRY_RUN off: done, and the note cleared


@pytest.mark.parametrize(
    ("kw", "deletes"),
    [
        ({}, True),  # GitHub lookups see closes
        ({"github_token": ""}, False),  # nothing can see a close: one recorded earlier only revokes
        ({"pull_request_check_interval": "0s"}, False),  # GitHub deployment statuses only, no lookups
        ({"github_token": "", "argocd_namespace": "argocd"}, True),  # a gone Application is a close
        ({"github_token": "", "argocd_namespace": "argocd", "dry_run": True}, False),
    ],
)
def test_a_close_deletes_the_namespace_only_where_the_configuration_can_see_closes(kw, deletes) -> None:
    """Issue 25, item 9: the chart grants namespace delete from the same condition
    (settings.deletes_namespaces), so the controller never attempts a delete it has no right to."""
    p = _plan(ns(), now=T0 + 24 * H, current={"phase": "Closed", "closed": CLOSED_AT}, **kw)
    assert p.status["phase"] == "Closed" and p.status["allowedHosts"] == []
    assert p.delete_namespace is deletes
    assert settings(**kw).deletes_namespaces is deletes


def test_a_namespace_being_deleted_is_terminating_whatever_else_holds() -> None:
    p = _plan(ns(deleting=True), now=T0, state=pr("closed"))
    assert p.status["phase"] == "Terminating" and not p.delete_namespace
