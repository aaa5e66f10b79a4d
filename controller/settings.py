"""The controller's settings: names, types, defaults and help, in one place (those it shares with the broker
in foundation/settings.py)."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from foundation.config import SECRET, Problems, env_name
from foundation.durations import Duration
from foundation.hosts import InvalidHost, normalize_host
from foundation.settings import CommaList, SharedSettings


def _json_object(value: object) -> object:
    """A JSON object from the environment ('{"requests": {"cpu": "100m"}}'); YAML mappings pass through."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
    return value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


OptionalSeconds = Annotated[float | None, BeforeValidator(_empty_is_none)]
def _quantity(value: object) -> object:
    # YAML writes `cpu: 1` as a number; Kubernetes takes quantities as strings.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantities = dict[Literal["cpu", "memory", "ephemeral-storage"], Annotated[str, BeforeValidator(_quantity)]]


class Resources(BaseModel):
    """Container resources as Kubernetes writes them (quantities are checked by the apiserver)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    requests: Quantities = Field(default_factory=dict)
    limits: Quantities = Field(default_factory=dict)


OptionalDuration = Annotated[Duration | None, BeforeValidator(_empty_is_none)]


class ControllerSettings(SharedSettings):
    namespace_selector: str = Field(
        default="preview-broker.io/preview=true", description="Label selector of preview namespaces."
    )
    ingress_hosts: Literal["all", "annotated"] = Field(
        default="all",
        description="Which Ingress rules add hosts: all, or only Ingresses annotated preview-broker.io/expose=true.",
    )
    kube_namespace: str = Field(
        default="preview-broker", description="Namespace where the allowlist is published (and the Lease lives)."
    )
    default_ttl: OptionalDuration = Field(
        default=None,
        description="Default lifetime of a preview (e.g. 72h), counted from its last activity (creation or a new "
        "head commit); empty = no expiry.",
    )
    expiry_action: Literal["delete", "revoke"] = Field(
        default="revoke",
        description="On expiry: revoke the hosts only, or also delete the namespace (with Argo CD selfHeal "
        "a deleted namespace of an open PR comes back; revoke is the safe default).",
    )
    database_enabled: bool = Field(
        default=False,
        description="Run the database add-on (CloudNativePG): watch Clusters and create them for the previews that "
        "want one. Off, the controller neither reads nor writes CloudNativePG objects (and needs no rights on them); "
        "a namespace's preview-broker.io/database annotation is then ignored with a Warning event.",
    )
    database_default: bool = Field(default=False, description="Create a cloned database unless a namespace opts out.")
    database_mode: Literal["plugin", "in-tree"] = Field(
        default="plugin",
        description="CloudNativePG recovery: the Barman Cloud plugin (an ObjectStore; needs the plugin installed) "
        "or the in-tree barmanObjectStore (deprecated since CloudNativePG 1.26).",
    )
    database_source_name: str = Field(default="", description="serverName of the source cluster's backups.")
    database_destination_path: str = Field(default="", description="s3://bucket/path of the source cluster's backups.")
    database_s3_secret: str = Field(
        default="",
        description="Secret (in each preview namespace) with ACCESS_KEY_ID/ACCESS_SECRET_KEY for the backups; "
        "empty = inherit the IAM role (IRSA).",
    )
    database_storage_size: str = Field(default="1Gi", description="Storage of the cloned database.")
    database_instances: int = Field(default=1, ge=1, le=5, description="Instances of the cloned database.")
    database_storage_class: str = Field(
        default="", description="StorageClass of the cloned database's volumes; empty = the cluster default."
    )
    database_image: str = Field(
        default="", description="PostgreSQL image of the clone (same major version as the source); empty = CNPG's default."
    )
    database_resources: Annotated[Resources, BeforeValidator(_json_object)] = Field(
        default_factory=Resources,
        description='Resources of each database instance, as JSON: {"requests": {"cpu": "100m", "memory": "256Mi"}, '
        '"limits": {"memory": "512Mi"}}.',
    )
    database_recovery_target_time: str = Field(
        default="",
        description="Point in time (RFC 3339) the clone is recovered to; empty = the end of the WAL archive. "
        "The annotation preview-broker.io/database-target-time overrides it per preview.",
    )
    bucket_enabled: bool = Field(
        default=False,
        description="Run the bucket add-on (ACK s3-controller): watch Buckets, create them for the previews that "
        "want one and empty them before deletion. Off, the controller neither reads nor writes ACK Buckets; a "
        "namespace's preview-broker.io/bucket annotation is then ignored with a Warning event.",
    )
    bucket_default: bool = Field(default=False, description="Create an S3 bucket unless a namespace opts out.")
    bucket_prefix: str = Field(default="preview", description="Prefix of bucket names (kept DNS-valid).")
    bucket_suffix: str = Field(
        default="", description="Suffix that makes bucket names globally unique (e.g. your AWS account id)."
    )
    bucket_deletion_policy: Literal["delete", "retain"] = Field(
        default="delete", description="ACK deletion policy for preview buckets."
    )
    s3_endpoint_url: str = Field(
        default="", description="S3 endpoint for emptying buckets before deletion (default: AWS, from the usual chain)."
    )
    s3_region: str = Field(default="", description="S3 region for emptying buckets (default: the AWS chain's).")
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub API for deployment statuses (Enterprise: https://HOST/api/v3)."
    )
    github_token: str = Field(default="", description="GitHub token for deployment statuses (or use a GitHub App).",
                              json_schema_extra=SECRET)
    github_app_id: str = Field(default="", description="GitHub App id for deployment statuses (preferred over a token).")
    github_app_installation_id: str = Field(default="", description="GitHub App installation id.")
    github_app_private_key_file: str = Field(default="", description="Path of the GitHub App's private key (PEM).")
    environment_url_scheme: Literal["https", "http"] = Field(
        default="https", description="Scheme of the preview URL reported to GitHub."
    )
    provisioning_timeout: Duration = Field(default=1800, description="Time after which a not-ready preview is Failed.")
    pull_request_check_interval: Duration = Field(
        default=300,
        description="How often each preview's pull request is looked up on GitHub (conditional requests; needs the "
        "GitHub credentials and the annotations preview-broker.io/github-repo and preview-broker.io/pr).",
    )
    github_rate_limit_reserve: int = Field(
        default=200, ge=0,
        description="GitHub requests kept in reserve for deployment statuses: pull-request checks pause until the "
        "rate limit resets when fewer remain.",
    )
    argocd_namespace: str = Field(
        default="",
        description="Namespace of the Argo CD Applications named by preview-broker.io/argocd-application annotations "
        "(usually argocd): a preview whose Application is gone counts as closed. Empty = not watched.",
    )
    closed_action: Literal["delete", "revoke"] = Field(
        default="delete",
        description="When a preview's pull request is closed: revoke its hosts at once, then delete its namespace "
        "(database, bucket and all) after CLOSED_GRACE unless Argo CD pruned it first; or only revoke.",
    )
    closed_grace: Duration = Field(
        default=600, description="Time Argo CD gets to prune a closed preview before the controller deletes it."
    )
    dry_run: bool = Field(
        default=False,
        description="Delete nothing (namespaces, bucket contents): log and record a DryRun Event for each deletion "
        "instead. Hosts are still revoked on expiry and close.",
    )
    public_url: str = Field(
        description="The broker's PUBLIC_URL (the same setting the broker reads): no preview may claim its host, "
        "nor a host under it. Required: without it a preview under PREVIEW_DOMAINS could claim the broker's own "
        "host and have the brokers publish it as a login target.",
    )
    reserved_hosts: CommaList = Field(
        default_factory=list,
        description="Comma list of further hosts that no preview may claim, nor any host under them.",
    )
    auth_wiring: Literal["off", "traefik", "nginx"] = Field(
        default="off",
        description="Generate each preview's auth wiring in its namespace (a namespace may override it with the "
        "annotation preview-broker.io/auth-wiring): traefik = a ForwardAuth Middleware named preview-broker-auth, "
        "for Ingress annotations and HTTPRoute ExtensionRef filters; nginx = an ExternalName Service and an "
        "Ingress routing /oauth2/ of the preview's hosts to the broker. Owned by the PreviewEnvironment.",
    )
    broker_internal_url: str = Field(
        default="",
        description="The broker's in-cluster URL for the generated wiring, e.g. "
        "http://preview-broker-broker.preview-broker.svc.cluster.local:80 (needed when any wiring is generated).",
    )
    auth_wiring_modes: CommaList = Field(
        default_factory=list,
        description="Further wiring kinds a namespace may ask for with its annotation (traefik, nginx); "
        "AUTH_WIRING's own is always allowed. The chart grants RBAC for exactly these.",
    )
    auth_wiring_ingress_class: str = Field(
        default="", description="IngressClass of the generated nginx-style /oauth2/ Ingresses (empty: the default)."
    )
    leader_election: bool = Field(default=True, description="Run only while holding the Lease.")
    lease_name: str = Field(default="preview-broker-controller", description="Name of the leader-election Lease.")
    lease_duration: Duration = Field(
        default=15, ge=2, le=300,
        description="Seconds a follower waits after the leader's last renewal before taking the Lease over.",
    )
    renew_deadline: OptionalSeconds = Field(
        default=None, gt=0,
        description="Seconds the leader keeps acting without a successful renewal; then it stops writing and exits. "
        "Must be less than LEASE_DURATION; empty = 2/3 of it (client-go's 15 s / 10 s).",
    )
    retry_period: OptionalSeconds = Field(
        default=None, gt=0,
        description="Seconds between attempts to acquire or renew the Lease; empty = 2/15 of LEASE_DURATION "
        "(client-go's 2 s for 15 s).",
    )
    identity: str = Field(default_factory=socket.gethostname, description="This replica's name in the Lease.")
    resync_period: Duration = Field(default=300, ge=10, description="Time between full re-reconciles.")

    @field_validator("reserved_hosts")
    @classmethod
    def _reserved(cls, v: list[str]) -> list[str]:
        try:
            return [normalize_host(h) for h in v]
        except InvalidHost as exc:
            raise ValueError(f"not a DNS name: {exc}") from None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        url_host(v)
        return v

    @field_validator("auth_wiring_modes")
    @classmethod
    def _modes(cls, v: list[str]) -> list[str]:
        modes = [m.lower() for m in v]
        if set(modes) - {"traefik", "nginx"}:
            raise ValueError("takes traefik and nginx only")
        return modes

    @field_validator("broker_internal_url")
    @classmethod
    def _internal_url(cls, v: str) -> str:
        if v:
            from urllib.parse import urlsplit

            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
                raise ValueError("must be the broker Service's base URL, like http://NAME.NAMESPACE.svc.cluster.local:80")
        return v.rstrip("/")

    @field_validator("database_recovery_target_time")
    @classmethod
    def _target_time(cls, v: str) -> str:
        if v:
            parse_rfc3339(v)
        return v

    def check_combinations(self, fail: Problems) -> None:
        for addon in ("database", "bucket"):
            if getattr(self, f"{addon}_default") and not getattr(self, f"{addon}_enabled"):
                fail(f"{addon}_default", f"needs {env_name(addon + '_enabled')}=true")
        if self.database_default and not self.database_destination_path:
            fail("database_destination_path", "is required when DATABASE_DEFAULT=true")
        app = (self.github_app_id, self.github_app_installation_id, self.github_app_private_key_file)
        if any(app) and not all(app):
            fail("github_app_id", "GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and GITHUB_APP_PRIVATE_KEY_FILE go together")
        if self.github_app_private_key_file:
            from pathlib import Path

            try:
                Path(self.github_app_private_key_file).read_bytes()
            except OSError as exc:  # not there, a directory, not readable by the pod's user
                fail("github_app_private_key_file",
                     f"cannot read {self.github_app_private_key_file}: {exc.strerror or exc}")
        if self.wiring_modes and not self.broker_internal_url:
            fail("broker_internal_url",
                 f"is required when the controller generates auth wiring ({', '.join(sorted(self.wiring_modes))})")
        if self.database_destination_path and not self.database_destination_path.startswith("s3://"):
            fail("database_destination_path", "must look like s3://bucket/path")
        # client-go's rules: followers wait lease_duration, the leader stops after renew_deadline
        # without a renewal (the gap is the margin for clock rates and writes in flight), and it
        # gets more than one try (with jitter) before the deadline.
        if not self.renew_deadline_seconds < self.lease_duration:
            fail("renew_deadline", f"must be less than LEASE_DURATION ({self.lease_duration})")
        if not self.retry_period_seconds * 1.2 < self.renew_deadline_seconds:
            fail("retry_period", f"must be less than RENEW_DEADLINE / 1.2 ({self.renew_deadline_seconds / 1.2:.2f})")

    @property
    def wiring_modes(self) -> frozenset[str]:
        """The auth wiring kinds the controller may generate (and has RBAC for)."""
        return frozenset({*self.auth_wiring_modes, self.auth_wiring} - {"off"})

    @property
    def github_enabled(self) -> bool:
        return bool(self.github_token or self.github_app_id)

    @property
    def detects_closes(self) -> bool:
        """Whether anything can tell this controller that a pull request closed: GitHub lookups or Argo CD.
        Without either, CLOSED_ACTION=delete can never delete (the chart then grants no namespace delete)."""
        return bool(self.argocd_namespace) or (self.github_enabled and self.pull_request_check_interval > 0)

    @property
    def deletes_namespaces(self) -> bool:
        """Whether this configuration can delete a namespace; helm/preview-broker grants namespace delete
        under exactly this condition (`preview-broker.deletesNamespaces`). EXPIRY_ACTION=delete counts even
        without DEFAULT_TTL: a namespace's own ttl / expires-at annotation can expire it."""
        closes = self.closed_action == "delete" and self.detects_closes
        return not self.dry_run and (self.expiry_action == "delete" or closes)

    @property
    def renew_deadline_seconds(self) -> float:
        return self.renew_deadline if self.renew_deadline is not None else self.lease_duration * 2 / 3

    @property
    def retry_period_seconds(self) -> float:
        return self.retry_period if self.retry_period is not None else self.lease_duration * 2 / 15

    @property
    def reserved(self) -> dict[str, str]:
        """Hosts no preview may claim (nor any host under them) -> why, for the refusal."""
        out = {h: "reserved (RESERVED_HOSTS)" for h in self.reserved_hosts}
        out[url_host(self.public_url)] = "the broker's own host (PUBLIC_URL)"
        return out


def url_host(url: str) -> str:
    """The normalized host of an absolute http(s) URL; ValueError otherwise."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute URL like https://auth.example.com")
    try:
        return normalize_host(parts.hostname)
    except InvalidHost as exc:
        raise ValueError(f"{url!r}: {exc}") from None


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime from RFC 3339 text; ValueError otherwise (a time zone is required)."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time like 2026-01-31T23:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or +01:00)")
    return parsed
