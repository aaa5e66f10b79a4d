"""The controller's settings: names, types, defaults and help, in one place."""

from __future__ import annotations

import re
import socket
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from broker.config import split_list
from broker.hosts import parse_domains

CommaList = Annotated[list[str], BeforeValidator(split_list)]
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """'72h', '1d12h', '90m', '30s' -> seconds; ValueError otherwise."""
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration like 72h, 1d12h, 90m")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + s)


class ControllerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preview_domains: CommaList = Field(
        description="Comma list of parent domains under which preview hosts may be claimed."
    )
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
    default_ttl: str = Field(default="", description="Default lifetime of a preview (e.g. 72h); empty = no expiry.")
    expiry_action: Literal["delete", "revoke"] = Field(
        default="revoke",
        description="On expiry: revoke the hosts only, or also delete the namespace (with Argo CD selfHeal "
        "a deleted namespace of an open PR comes back; revoke is the safe default).",
    )
    database_default: bool = Field(default=False, description="Create a cloned database unless a namespace opts out.")
    database_mode: Literal["in-tree", "plugin"] = Field(
        default="in-tree", description="CloudNativePG recovery: in-tree barmanObjectStore or the Barman Cloud plugin."
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
    github_token: str = Field(default="", description="GitHub token for deployment statuses (or use a GitHub App).")
    github_app_id: str = Field(default="", description="GitHub App id for deployment statuses (preferred over a token).")
    github_app_installation_id: str = Field(default="", description="GitHub App installation id.")
    github_app_private_key_file: str = Field(default="", description="Path of the GitHub App's private key (PEM).")
    environment_url_scheme: Literal["https", "http"] = Field(
        default="https", description="Scheme of the preview URL reported to GitHub."
    )
    provisioning_timeout: str = Field(default="30m", description="Time after which a not-ready preview is Failed.")
    leader_election: bool = Field(default=True, description="Run only while holding the Lease.")
    lease_name: str = Field(default="preview-broker-controller", description="Name of the leader-election Lease.")
    lease_duration: int = Field(default=15, ge=5, le=300, description="Lease duration in seconds.")
    identity: str = Field(default_factory=socket.gethostname, description="This replica's name in the Lease.")
    resync_period: int = Field(default=300, ge=10, description="Seconds between full re-reconciles.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")

    @field_validator("preview_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return parse_domains(v)

    @field_validator("default_ttl")
    @classmethod
    def _ttl(cls, v: str) -> str:
        if v:
            parse_duration(v)
        return v

    @field_validator("provisioning_timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        parse_duration(v)
        return v

    @model_validator(mode="after")
    def _combinations(self) -> ControllerSettings:
        from broker.config import ConfigError, env_name

        if self.database_default and not self.database_destination_path:
            raise ConfigError(env_name("database_destination_path"), "is required when DATABASE_DEFAULT=true")
        app = (self.github_app_id, self.github_app_installation_id, self.github_app_private_key_file)
        if any(app) and not all(app):
            raise ConfigError(env_name("github_app_id"),
                              "GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and GITHUB_APP_PRIVATE_KEY_FILE go together")
        if self.github_app_private_key_file:
            from pathlib import Path

            if not Path(self.github_app_private_key_file).is_file():
                raise ConfigError(env_name("github_app_private_key_file"), "file not found")
        if self.database_destination_path and not self.database_destination_path.startswith("s3://"):
            raise ConfigError(env_name("database_destination_path"), "must look like s3://bucket/path")
        return self

    @property
    def github_enabled(self) -> bool:
        return bool(self.github_token or self.github_app_id)

    @property
    def default_ttl_seconds(self) -> float | None:
        return parse_duration(self.default_ttl) if self.default_ttl else None

    @property
    def provisioning_timeout_seconds(self) -> float:
        return parse_duration(self.provisioning_timeout)
