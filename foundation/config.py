"""Typed settings from PREVIEW_BROKER_* environment variables (and an optional YAML file).

Shared by the broker and the controller: each defines a pydantic model whose field
names are the setting names in lower case; this module turns the environment into
that model, or into one ConfigError line that names the setting and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

PREFIX = "PREVIEW_BROKER_"
M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A bad or missing setting; str() is the one line printed at start-up."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = message
        super().__init__(f"{setting}: {message}")


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def split_list(value: Any) -> Any:
    """Comma lists from the environment ("a, b,c"); YAML lists pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise ConfigError("--config", f"{path} must hold a mapping of setting: value")
    return {str(k).lower().removeprefix(PREFIX.lower()): v for k, v in data.items()}


def load(
    model: type[M],
    environ: Mapping[str, str],
    *,
    config_file: Path | None = None,
    known: Iterable[str] = (),
) -> M:
    """Build `model` from the file (if any), then the environment on top of it.

    `known` lists field names of the other component, so that a setting meant for
    the controller does not count as a typo in the broker and vice versa.
    """
    values: dict[str, Any] = _read_file(config_file) if config_file else {}
    fields = set(model.model_fields)
    allowed = fields | set(known)
    for name in values:
        if name not in allowed:
            raise ConfigError(env_name(name), "unknown setting (in the config file); check the spelling")
    for key, raw in environ.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if name not in allowed:
            raise ConfigError(key, "unknown setting; check the spelling (see --help)")
        if name in fields:
            values[name] = raw
    values = {k: v for k, v in values.items() if k in fields}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _first_error(exc) from None


def _first_error(exc: ValidationError) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    setting = env_name(loc[0]) if loc else "settings"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "missing":
        msg = "is required but not set"
    elif "input" in err and not isinstance(err["input"], dict) and loc and "secret" not in loc[0]:
        shown = repr(err["input"])
        msg = f"{msg} (got {shown[:80]})"
    return ConfigError(setting, msg)


def describe(model: type[BaseModel]) -> str:
    """Help text: one entry per setting, from the model's field descriptions."""
    lines = []
    for name, field in model.model_fields.items():
        if field.is_required():
            default = ""
        elif field.default_factory is not None:
            default = " [default: computed at start-up]"
        elif _is_duration(field) and isinstance(field.default, int):
            from foundation.durations import format_duration

            default = f" [default: {format_duration(field.default)}]"
        else:
            default = f" [default: {_show_default(field.default)}]"
        req = " (required)" if field.is_required() else ""
        lines.append(f"  {env_name(name)}{req}{default}\n      {field.description or ''}")
    return "\n".join(lines)


def _is_duration(field: Any) -> bool:
    from foundation.durations import parse_duration

    return any(getattr(m, "func", None) is parse_duration for m in field.metadata)


def _show_default(value: Any) -> str:
    if isinstance(value, list | tuple | frozenset | set):
        return ",".join(str(v) for v in value) or "(empty)"
    if value == "":
        return "(empty)"
    return str(value)
