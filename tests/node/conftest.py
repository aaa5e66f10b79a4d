"""The chart on a real node: one-node cluster, the project's image loaded into it, Dex, `helm install`.

Session fixtures, shared by tests/node: the cluster of tests/support/node.py (its control plane
publishes this run's CA to pods next to its own), the image scripts/build-image makes, loaded
into the node's containerd from an archive, Dex listening on the node's address (pods reach it
there, and so does the browser), and the chart installed with ci/node-values.yaml plus what
changes per run. The logs of every component and pod are attached to a failing test's report.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest

from tests.support.dex import DEX_CLIENT_ID, DEX_CLIENT_SECRET, Dex, start_dex
from tests.support.node import (
    CHART,
    NAMESPACE,
    NODE_IP,
    NODE_VALUES,
    RELEASE,
    Node,
    NodeUnavailable,
    Release,
    build_project_image,
    export_image,
    start_cluster,
)
from tests.support.procs import free_port
from tests.support.reports import Section, logs_on_failure
from tests.support.stack import BROKER_HOST, DOMAIN
from tests.support.tls import Certs, make_certs

# Traefik's https entry point in front of the in-cluster broker (test_e2e_in_cluster.py): part of
# the broker's public URL and of the redirect URI registered at Dex, so chosen before either.
PUBLIC_PORT = free_port()
_live: list[Node] = []


@pytest.fixture(scope="session")
def node_certs(tmp_path_factory) -> Certs:
    # One key for every name of the run, Dex's address on the node included (the browser accepts that key).
    return make_certs(tmp_path_factory.mktemp("node-tls"), [BROKER_HOST, f"*.{DOMAIN}", DOMAIN],
                      ips=("127.0.0.1", NODE_IP))


@pytest.fixture(scope="session")
def node(tmp_path_factory, node_certs: Certs) -> Iterator[Node]:
    try:
        n = start_cluster(tmp_path_factory.mktemp("node"), extra_cas=(node_certs.ca_file,))
    except NodeUnavailable as exc:
        pytest.fail(str(exc))
    _live.append(n)
    try:
        yield n
    finally:
        _live.remove(n)
        n.stop()


@pytest.fixture(scope="session")
def project_image(node: Node, tmp_path_factory) -> str:
    """scripts/build-image's image, imported into the node's containerd (never pushed anywhere)."""
    try:
        # PREVIEW_BROKER_NODE_IMAGE names an image already in scripts/build-image's storage (iterating
        # on these tests); by default the image is built from the working tree, as users build it.
        image, storage = build_project_image(os.environ.get("PREVIEW_BROKER_NODE_IMAGE"))
    except NodeUnavailable as exc:
        pytest.fail(str(exc))
    node.load_image(export_image(image, storage, tmp_path_factory.mktemp("image") / "image.tar"))
    assert image in node.images()
    return image


@pytest.fixture(scope="session")
def node_dex(node: Node, node_certs: Certs, tmp_path_factory) -> Iterator[Dex]:
    callback = f"https://{BROKER_HOST}:{PUBLIC_PORT}/oauth2/callback"
    d = start_dex(tmp_path_factory.mktemp("node-dex"), [callback], certs=node_certs, host=NODE_IP)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def release(node: Node, project_image: str, node_dex: Dex, node_certs: Certs) -> Release:
    """`helm install` of the chart; returns once both Deployments are Ready through their probes."""
    repository, _, tag = project_image.rpartition(":")
    node.helm("install", RELEASE, str(CHART), "-f", str(NODE_VALUES), "--namespace", NAMESPACE, "--create-namespace",
              "--set", f"image.repository={repository},image.tag={tag}",
              "--set", f"publicUrl=https://{BROKER_HOST}:{PUBLIC_PORT}",
              "--set", f"broker.allowedPorts={{{PUBLIC_PORT}}}",
              "--set", f"provider.oidcIssuer={node_dex.issuer},provider.clientId={DEX_CLIENT_ID}",
              "--set", f"secrets.clientSecret={DEX_CLIENT_SECRET}",
              "--wait", "--timeout", "180s")
    return Release(node, node_dex, node_certs, project_image, PUBLIC_PORT)


def _node_logs() -> Iterator[Section]:
    for n in _live[:1]:
        yield "node components", n.logs
        yield f"{NAMESPACE} events", functools.partial(n.events, NAMESPACE)  # the apiserver may be what failed
        yield f"{NAMESPACE} pod logs", functools.partial(n.pod_logs, NAMESPACE)


pytest_runtest_makereport = logs_on_failure(_node_logs)
