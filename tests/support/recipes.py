"""The YAML recipes of docs/gateways.md, marked `<!-- recipe: NAME -->`: tests apply or compare them,
so the documentation shows what runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateways.md"


def recipe(name: str) -> dict[str, Any]:
    """The YAML block right after the marker `<!-- recipe: name -->`."""
    match = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    if match is None:
        raise AssertionError(f"docs/gateways.md has no recipe {name!r}")
    return yaml.safe_load(match.group(1))
