"""The add-ons (see base.py), in the order their status keys, objects, events and side jobs come."""

from controller.addons import bucket, database, github
from controller.addons.base import AddOn, Provisioned

ADDONS: tuple[AddOn, ...] = (database.ADDON, bucket.ADDON, github.ADDON)
# Those that give a preview objects, and the one that creates each kind (so a write knows whose
# cache says it exists already).
PROVISIONED: tuple[Provisioned, ...] = tuple(a for a in ADDONS if isinstance(a, Provisioned))
BY_KIND = {kind.kind: addon for addon in PROVISIONED for kind in addon.creates}
