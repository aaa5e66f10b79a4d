"""Typed settings from PREVIEW_BROKER_* environment variables (and an optional YAML file).

Shared by the broker and the controller: each defines a pydantic model whose field
names are the setting names in lower case; this module turns the environment into
that model, or into a ConfigError that names every bad setting at once, one line each
(the setting, then what is wrong with it).

A field marked secret (``json_schema_extra=SECRET``) may instead be read from a file:
``<NAME>_FILE`` holds its path, so a Kubernetes Secret can be mounted as files rather
than put into the environment, where every child process and `/proc/<pid>/environ`
reader sees it.  Secrets are never echoed in errors nor in the effective settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

PREFIX = "PREVIEW_BROKER_"
FILE_SUFFIX = "_file"
M = TypeVar("M", bound=BaseModel)
# Marks a settings field as secret: readable from <NAME>_FILE, masked when shown.
SECRET: dict[str, Any] = {"secret": True}
MASK = "****"


class ConfigError(Exception):
    """A bad or missing setting; str() is the one line printed at start-up.

    Start-up reports every bad setting at once: `errors` holds one ConfigError per bad setting (this one
    first; just this one when only one setting is bad), and str() is their lines, one a setting.
    `setting` and `message` are the first one's.
    """

    def __init__(self, setting: str, message: str, *, more: Sequence[ConfigError] = ()) -> None:
        self.setting = setting
        self.message = message
        self.errors: tuple[ConfigError, ...] = (self, *(e for m in more for e in m.errors))
        super().__init__("\n".join(f"{e.setting}: {e.message}" for e in self.errors))

    @classmethod
    def of(cls, errors: Iterable[ConfigError]) -> ConfigError:
        """One error for many, in order, one line a setting: the first problem found with each."""
        seen: dict[str, ConfigError] = {}
        for err in (e for error in errors for e in error.errors):
            seen.setdefault(err.setting, err)
        first, *rest = seen.values()  # callers pass at least one
        return cls(first.setting, first.message, more=[cls(e.setting, e.message) for e in rest])

    @property
    def lines(self) -> list[str]:
        """One line a bad setting, as start-up prints them."""
        return [f"{e.setting}: {e.message}" for e in self.errors]


class Problems:
    """Collects the problems of checks between settings (a model validator), so that start-up names every
    one of them, not just the first: call it with a field name and a message for each, then `raise_any()`."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    def __call__(self, field: str, message: str) -> None:
        self.found.append(ConfigError(env_name(field), message))

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError.of(self.found)


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def split_list(value: Any) -> Any:
    """Comma lists from the environment ("a, b,c"), or one item a line (a mounted file);
    YAML lists pass through."""
    if isinstance(value, str):
        return [item.strip() for item in re.split(r"[,\n]", value) if item.strip()]
    return value


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def _read_secret_file(setting: str, path: str) -> str:
    """The content of a secret file without its final line break (editors and `kubectl create secret
    --from-file` add one), or a one-line ConfigError naming the _FILE setting."""
    if not path.strip():
        raise ConfigError(setting, "is empty; set it to the path of a file holding the secret")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(setting, f"{path} is not UTF-8 text") from None
    return text.rstrip("\r\n")


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
    problems: list[ConfigError] = []
    reported: set[str] = set()  # fields whose problem is already named (their secret file): no second line
    fields = set(model.model_fields)
    secret_files = {name + FILE_SUFFIX: name for name, f in model.model_fields.items() if is_secret(f)}
    allowed = fields | set(secret_files) | set(known)
    for name in values:
        if name not in allowed:
            problems.append(ConfigError(env_name(name), "unknown setting (in the config file); check the spelling"))
    for key, raw in environ.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if name not in allowed:
            problems.append(ConfigError(key, "unknown setting; check the spelling (see --help)"))
        elif name in fields or name in secret_files:
            values[name] = raw
    from_files: dict[str, str] = {}
    for file_setting, name in secret_files.items():
        if file_setting not in values:
            continue
        path = str(values.pop(file_setting))
        if name in values:
            problems.append(ConfigError(env_name(file_setting), f"set either {env_name(name)} or "
                                        f"{env_name(file_setting)}, not both"))
            reported.add(name)
            continue
        try:
            values[name] = _read_secret_file(env_name(file_setting), path)
        except ConfigError as exc:
            problems.append(exc)
            reported.add(name)
            continue
        from_files[name] = path
    values = {k: v for k, v in values.items() if k in fields}
    try:
        settings = model.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if _field_of(err) not in reported:
                problems.append(_error(err, model, from_files))
    except ConfigError as exc:  # the checks between settings (model validators), every one of them
        problems.append(exc)
    if problems:
        raise ConfigError.of(problems) from None
    return settings


def _field_of(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    return loc[0] if loc else ""


def _error(err: Mapping[str, Any], model: type[BaseModel], from_files: Mapping[str, str]) -> ConfigError:
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    setting = env_name(loc[0]) if loc else "settings"
    if loc and loc[0] in from_files:  # the file is what to fix: name its setting and path
        setting = f"{env_name(loc[0] + FILE_SUFFIX)} ({from_files[loc[0]]})"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "missing":
        msg = "is required but not set"
    elif "input" in err and not isinstance(err["input"], dict) and loc and not _hides_input(model, loc[0]):
        shown = repr(err["input"])
        msg = f"{msg} (got {shown[:80]})"
    return ConfigError(setting, msg)


def _hides_input(model: type[BaseModel], name: str) -> bool:
    """Never echo a secret's value in an error (it would land in the pod's log)."""
    field = model.model_fields.get(name)
    return "secret" in name or (field is not None and is_secret(field))


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
        also = f" Or {env_name(name + FILE_SUFFIX)}: the path of a file holding it." if is_secret(field) else ""
        lines.append(f"  {env_name(name)}{req}{default}\n      {field.description or ''}{also}")
    return "\n".join(lines)


def effective(settings: BaseModel) -> dict[str, str]:
    """Every setting as the process will use it, spelled as in the environment, secrets masked
    (`preview-broker check-config`)."""
    shown = settings.model_dump(mode="json")
    out = {}
    for name, field in type(settings).model_fields.items():
        value = shown[name]
        if is_secret(field):
            out[env_name(name)] = (MASK if value else "(empty)") if not isinstance(value, list) else (
                ",".join(MASK for _ in value) or "(empty)")
            continue
        if isinstance(value, dict):
            import json

            out[env_name(name)] = json.dumps(value, separators=(",", ":"))
        elif value is None:
            out[env_name(name)] = "(empty)"
        else:
            out[env_name(name)] = _show_default(value).lower() if isinstance(value, bool) else _show_default(value)
    return out


def _is_duration(field: Any) -> bool:
    from foundation.durations import parse_duration

    return any(getattr(m, "func", None) is parse_duration for m in field.metadata)


def _show_default(value: Any) -> str:
    if isinstance(value, list | tuple | frozenset | set):
        return ",".join(str(v) for v in value) or "(empty)"
    if value == "":
        return "(empty)"
    return str(value)
