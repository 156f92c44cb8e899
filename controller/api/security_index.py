"""Lookups the security-group API needs, kept current by the store's commit events.

Which ports use a group, which rules a group has, which rules name a group as
their remote group, and each project's ``default`` group: the questions that
validation (a duplicate rule, a group still in use) and the default group
("created on first use") ask, answered without scanning the store. Like
``ModelIndex``, it is fed inside each commit, so an API write holding the core's
lock sees its own previous commits.
"""

from __future__ import annotations

import threading

from controller.model import DEFAULT_SECURITY_GROUP, Port, SecurityGroup, SecurityGroupRule
from controller.store.base import Event, EventType, Store

_KINDS = ("port", "security_group", "security_group_rule")


class SecurityIndex:
    """Ports and rules per group, rules per remote group, the default group per project."""

    def __init__(self, store: Store) -> None:
        self._lock = threading.RLock()
        self._ports: dict[str, dict[str, None]] = {}  # group -> ports listing it (ordered: oldest first)
        self._rules: dict[str, dict[str, None]] = {}  # group -> its rules
        self._remote: dict[str, dict[str, None]] = {}  # group -> rules naming it as remote group
        self._defaults: dict[str, str] = {}  # project -> its default group
        self.unsubscribe = store.subscribe(self.apply)
        with self._lock:
            for kind in _KINDS:
                for obj in store.list(kind):
                    self._apply_one(None, obj)

    def apply(self, events: list[Event]) -> None:
        with self._lock:
            for ev in events:
                if ev.kind in _KINDS:
                    self._apply_one(ev.old, None if ev.type is EventType.DELETED else ev.obj)

    def _apply_one(self, old: object | None, new: object | None) -> None:
        if isinstance(old, Port):
            for g in old.security_groups:
                _remove(self._ports, g, old.id)
        if isinstance(new, Port):
            for g in new.security_groups:
                self._ports.setdefault(g, {})[new.id] = None
        if isinstance(old, SecurityGroupRule):
            _remove(self._rules, old.security_group_id, old.id)
            if old.remote_group_id:
                _remove(self._remote, old.remote_group_id, old.id)
        if isinstance(new, SecurityGroupRule):
            self._rules.setdefault(new.security_group_id, {})[new.id] = None
            if new.remote_group_id:
                self._remote.setdefault(new.remote_group_id, {})[new.id] = None
        if isinstance(old, SecurityGroup) and self._defaults.get(old.project_id) == old.id:
            del self._defaults[old.project_id]
        if isinstance(new, SecurityGroup) and new.name == DEFAULT_SECURITY_GROUP:
            self._defaults.setdefault(new.project_id, new.id)

    # -------------------------------------------------------------- queries

    def ports_of(self, group_id: str) -> list[str]:
        with self._lock:
            return list(self._ports.get(group_id, ()))

    def rules_of(self, group_id: str) -> list[str]:
        with self._lock:
            return list(self._rules.get(group_id, ()))

    def rules_naming(self, group_id: str) -> list[str]:
        """Rules whose remote group is ``group_id``."""
        with self._lock:
            return list(self._remote.get(group_id, ()))

    def default_group(self, project_id: str) -> str | None:
        with self._lock:
            return self._defaults.get(project_id)


def _remove(table: dict[str, dict[str, None]], key: str, item: str) -> None:
    members = table.get(key)
    if members is not None:
        members.pop(item, None)
        if not members:
            del table[key]
