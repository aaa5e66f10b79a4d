"""What the broker's and the controller's settings share: written once, here.

`SharedSettings` holds the settings both commands read with one meaning, one help text and one
validation (the preview domains, the extra CA certificates, the log level and format); `BrokerSettings`
and `ControllerSettings` inherit it and add their own.  Its model validator runs the component's checks
between settings (`check_combinations`) and reports every problem they find, not just the first.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from foundation.config import Problems, split_list
from foundation.hosts import parse_domains
from foundation.trust import CAFile

# A list setting: a comma list in the environment ("a, b,c"), one item a line in a file, a YAML list.
CommaList = Annotated[list[str], BeforeValidator(split_list)]


class SharedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preview_domains: CommaList = Field(
        description="Comma list of parent domains under which preview hosts live, e.g. preview.example.com: "
        "the broker redirects only to hosts under them, the controller lets previews claim only such hosts."
    )
    extra_ca_certs: CAFile = Field(
        default="",
        description="Path of a PEM file of CA certificates to trust besides the public ones: the broker's on calls "
        "to the identity provider (a private issuer, GitHub Enterprise), the controller's on calls to GitHub "
        "(Enterprise) and S3 (an S3-compatible store behind a private CA).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log lines as JSON objects (for log pipelines) or as text (for people)."
    )

    @field_validator("preview_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return parse_domains(v)

    @model_validator(mode="after")
    def _combinations(self) -> SharedSettings:
        problems = Problems()
        self.check_combinations(problems)
        problems.raise_any()
        return self

    def check_combinations(self, fail: Problems) -> None:
        """The component's checks between settings, once each setting is valid on its own: call
        `fail(field, message)` for every problem (and go on checking the rest)."""
