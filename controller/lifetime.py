"""When a preview ends (pure): TTL counted from its last activity, and its pull request's close.

Lifetime follows activity: a preview whose pull request gets a new head commit
lives `ttl` longer from that moment.  The commit comes from the namespace's
`preview-broker.io/github-sha` annotation (Argo CD's pull-request generator
updates it on every push), else from what GitHub said about the pull request.
The first commit seen counts from the namespace's creation.  What was seen is
recorded in the PreviewEnvironment's `status.activity`, so a restart changes
nothing.  An `expires-at` annotation is absolute: activity does not move it.

A preview is closed when GitHub says its pull request is closed, or when the
Argo CD Application named by its `preview-broker.io/argocd-application`
annotation is gone.  The close is recorded in `status.closed` (reason and time,
kept across restarts: the grace period before deletion counts from it); a pull
request reopened on GitHub clears it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controller.times import Event, format_time, parse_time
from foundation import contract
from foundation.durations import parse_duration


@dataclass(frozen=True, slots=True)
class PullRequest:
    """What GitHub last said about a preview's pull request."""

    repo: str
    number: str
    state: str  # "open" | "closed"
    merged: bool = False
    head_sha: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repo}#{self.number}"


@dataclass(frozen=True, slots=True)
class Lifetime:
    activity: dict[str, str] | None  # status.activity: {"sha", "at"} of the last head commit seen
    expires_at: datetime | None  # None: never
    warning: Event | None = None  # an unreadable ttl / expires-at annotation


def head_sha(annotations: Mapping[str, str], pr: PullRequest | None) -> str:
    return annotations.get(contract.ANN_GITHUB_SHA, "") or (pr.head_sha if pr else "")


def activity(
    created: datetime, sha: str, recorded: Mapping[str, Any] | None, now: datetime
) -> dict[str, str] | None:
    """status.activity after seeing `sha` at `now` (the first one counts from `created`)."""
    if not sha:
        return dict(recorded) if recorded else None
    if not recorded:
        return {"sha": sha, "at": format_time(created)}
    if recorded.get("sha") == sha:
        return dict(recorded)
    return {"sha": sha, "at": format_time(now)}


def lifetime(
    *,
    created: datetime,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    recorded_activity: Mapping[str, Any] | None,
    pr: PullRequest | None,
    default_ttl: float | None,
    now: datetime,
) -> Lifetime:
    act = activity(created, head_sha(annotations, pr), recorded_activity, now)
    if labels.get(contract.LABEL_KEEP, "").lower() == "true":
        return Lifetime(act, None)
    warning = None
    if contract.ANN_EXPIRES_AT in annotations:
        at = parse_time(annotations[contract.ANN_EXPIRES_AT])
        if at is not None:
            return Lifetime(act, at)
        warning = Event("Warning", "InvalidExpiry", f"{contract.ANN_EXPIRES_AT} is not RFC 3339; using the default TTL")
    ttl = default_ttl
    if contract.ANN_TTL in annotations and warning is None:
        try:
            ttl = parse_duration(annotations[contract.ANN_TTL])
        except ValueError:
            warning = Event("Warning", "InvalidTTL", f"{contract.ANN_TTL} is not a duration like 72h; using the default")
    if ttl is None:
        return Lifetime(act, None, warning)
    since = max(created, parse_time((act or {}).get("at")) or created)
    return Lifetime(act, since + timedelta(seconds=ttl), warning)


def closed(
    *,
    pr: PullRequest | None,
    application: str,
    application_gone: bool,
    recorded: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, str] | None:
    """status.closed ({"reason", "at"}) or None while the pull request is open (or not known to be closed)."""
    reasons = []
    if pr is not None and pr.state == "closed":
        reasons.append(f"pull request {pr.ref} was {'merged' if pr.merged else 'closed'}")
    if application_gone:
        reasons.append(f"Argo CD Application {application} is gone")
    if not reasons:
        if pr is not None and pr.state == "open":
            return None  # reopened (or never closed)
        return dict(recorded) if recorded else None  # not looked up again since a restart: keep what was seen
    at = (recorded or {}).get("at") or format_time(now)
    return {"reason": "; ".join(reasons), "at": at}


def deletion_due(closed_status: Mapping[str, Any], grace: float, now: datetime) -> datetime:
    """When a closed preview's namespace goes, if Argo CD has not pruned it by then."""
    return (parse_time(closed_status.get("at")) or now) + timedelta(seconds=grace)
