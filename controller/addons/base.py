"""What an add-on is: something a preview gets beside its hosts, on only when its setting says so.

Each add-on is one module in this package and one entry in `ADDONS` (controller/addons/__init__.py).
It owns its setting (`<NAME>_ENABLED`) and the side jobs it needs (`extensions`).  A provisioned
add-on (a database, a bucket) also owns its annotation and `<NAME>_DEFAULT`, the kinds it creates,
and the one object whose readiness is its status (`status.<name>`, watched only while it is enabled
and its CRD is served).  Everything but `extensions` is pure.
"""

from __future__ import annotations

from typing import Any, ClassVar

from controller.kinds import Kind
from controller.settings import ControllerSettings
from controller.times import Event
from controller.views import NamespaceView


def conditions(obj: Any) -> dict[str, str]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c.get("status", "") for c in conds if isinstance(c, dict)}


class AddOn:
    """A side of the controller that runs only when its setting turns it on."""

    name: ClassVar[str]

    def enabled(self, settings: ControllerSettings) -> bool:
        raise NotImplementedError

    def extensions(self, settings: ControllerSettings, kube: Any, controller: Any, fence: Any) -> list[Any]:
        """Side jobs it needs while enabled (run beside the loop, told after every reconcile)."""
        return []


class Provisioned(AddOn):
    """An add-on that gives a preview objects: a database, a bucket."""

    name: ClassVar[str]  # the status key and the word of its events ("database")
    annotation: ClassVar[str]  # "true"/"false" on a namespace overrides <NAME>_DEFAULT
    observed: ClassVar[Kind]  # one per preview namespace, labelled as ours: its readiness is the status
    watch_name: ClassVar[str]  # the name of its watch (metrics, logs)
    creates: ClassVar[tuple[Kind, ...]]  # every kind desired() returns
    ready_word: ClassVar[str] = "Ready"  # status.<name> once ready (else Provisioning)

    def default(self, settings: ControllerSettings) -> bool:
        raise NotImplementedError

    def wanted(self, ns: NamespaceView, settings: ControllerSettings) -> bool:
        """What the namespace asks for (its annotation), else the default; enabled or not."""
        value = ns.annotations.get(self.annotation, "").lower()
        if value in ("true", "false"):
            return value == "true"
        return self.default(settings)

    def desired(self, ns: NamespaceView, settings: ControllerSettings) -> tuple[list[dict[str, Any]], list[Event]]:
        """The objects a live preview that wants it must have, and warnings about its request."""
        raise NotImplementedError

    def ready(self, obj: Any) -> bool:
        raise NotImplementedError
