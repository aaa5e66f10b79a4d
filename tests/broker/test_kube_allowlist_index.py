"""The broker's host index of PreviewEnvironments: only names and live hosts are kept."""

from __future__ import annotations

from broker.kube_allowlist import HostIndex, entry


def pe(name: str, hosts: list[str], phase: str = "Ready", deleting: bool = False) -> dict:
    meta = {"name": name, "managedFields": [{"manager": "x"}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "allowedHosts": hosts}}


def test_entry_keeps_the_name_and_live_hosts_only() -> None:
    assert entry(pe("pr-1", ["PR-1.Preview.Example.com.", "bad host"])) == (
        "pr-1", frozenset({"pr-1.preview.example.com"}))
    assert entry(pe("pr-2", ["pr-2.preview.example.com"], phase="Expired")) == ("pr-2", frozenset())
    assert entry(pe("pr-3", ["pr-3.preview.example.com"], deleting=True)) == ("pr-3", frozenset())


def test_index_sync_then_events() -> None:
    index = HostIndex()
    index.replace_all([entry(pe("pr-1", ["a.preview.example.com"])), entry(pe("pr-2", ["b.preview.example.com"]))])
    assert "a.preview.example.com" in index and len(index) == 2
    index.apply("MODIFIED", entry(pe("pr-1", ["c.preview.example.com"])))
    assert "a.preview.example.com" not in index and "c.preview.example.com" in index
    index.apply("MODIFIED", entry(pe("pr-2", ["b.preview.example.com"], phase="Terminating")))
    assert "b.preview.example.com" not in index
    index.apply("DELETED", entry(pe("pr-1", ["c.preview.example.com"])))
    assert len(index) == 0 and index.hosts() == frozenset()
