"""Which Argo CD Applications still exist: a preview whose Application is gone counts as closed.

A preview namespace names the Application that deployed it in the annotation
`preview-broker.io/argocd-application` (`name` or `namespace/name`).  The
controller watches the Applications of ARGOCD_NAMESPACE (names only: the
objects are large and only their existence matters) and wakes the previews
that name one when it appears or disappears.  Status updates of an existing
Application, which Argo CD writes all the time, wake nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controller.policy import NamespaceView
from foundation import contract


class Applications:
    def __init__(
        self, namespace: str, previews: Callable[[], Iterable[NamespaceView]], wake: Callable[[str], None]
    ) -> None:
        self.namespace = namespace
        self._previews = previews
        self._wake = wake
        self.names: set[str] | None = None  # None until listed: no verdict before that

    # --- watch handlers ------------------------------------------------------------------------
    def on_sync(self, listed: list[str]) -> None:
        fresh = set(listed)
        changed = fresh ^ (self.names or set())
        self.names = fresh
        self._wake_for(changed)

    def on_event(self, event: str, app: str) -> None:
        if self.names is None:
            self.names = set()
        if event == "DELETED":
            if app in self.names:
                self.names.discard(app)
                self._wake_for({app})
        elif app not in self.names:
            self.names.add(app)
            self._wake_for({app})

    # --- what the reconcile asks -------------------------------------------------------------------
    def of(self, ns: NamespaceView) -> str | None:
        """The name of the Application `ns` names in the watched namespace (None: none, or elsewhere)."""
        value = ns.annotations.get(contract.ANN_ARGOCD_APP, "").strip()
        if not value:
            return None
        app_ns, _, app = value.rpartition("/")
        if app_ns and app_ns != self.namespace:
            return None  # an Application elsewhere: not watched, so no verdict
        return app or None

    def gone(self, ns: NamespaceView) -> bool:
        app = self.of(ns)
        return app is not None and self.names is not None and app not in self.names

    def _wake_for(self, apps: set[str]) -> None:
        if apps:
            for view in list(self._previews()):
                if self.of(view) in apps:
                    self._wake(view.name)
