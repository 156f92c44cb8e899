"""Instances: the compute resources whose ports carry their id in ``device_id``.

Plain methods over the store, like ``controller.api.network_api``: ``fields`` /
``changes`` map field names to the user's values; errors are ``ApiError``.
An instance's ``ports`` are not stored with it: they are the ports whose
``device_id`` names it, looked up when it is presented. Deleting an instance
leaves its ports in place (as Neutron does when Nova is not the caller).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from controller.api import validation as v
from controller.api.errors import from_store_error, not_found
from controller.api.masks import INSTANCE_RULES
from controller.api.paging import Page, paginate
from controller.model import Instance
from controller.store.base import Store, StoreError
from dataplane.common.logs import get_logger

log = get_logger(__name__)

MAX_METADATA_VALUE = 255


class InstanceApi:
    """Instance CRUD over the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()  # read-modify-write of one instance at a time

    def _get(self, instance_id: str) -> Instance:
        obj = self.store.get("instance", instance_id) if instance_id else None
        if not isinstance(obj, Instance):
            raise not_found("instance", instance_id)
        return obj

    def _commit(self, puts: list[Instance] | None = None, deletes: list[tuple[str, str]] | None = None) -> int:
        try:
            return self.store.commit(puts or (), deletes or ())
        except StoreError as exc:
            raise from_store_error(exc) from exc

    def get_instance(self, instance_id: str) -> Instance:
        return self._get(instance_id)

    def list_instances(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Instance]:
        revision, objs = self.store.snapshot("instance")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create_instance(self, fields: Mapping[str, Any]) -> Instance:
        instance_id = str(uuid.uuid4())
        name = v.text("instance.name", fields.get("name", ""))
        if fields.get("hostname"):
            hostname = v.hostname("instance.hostname", fields["hostname"])
        else:
            hostname = v.sanitize_hostname(name, fallback=f"instance-{instance_id[:8]}")
        instance = Instance(
            id=instance_id,
            name=name,
            hostname=hostname,
            project_id=v.text("instance.project_id", fields.get("project_id", "")),
            user_data=v.user_data("instance.user_data", fields.get("user_data", b"")),
            public_keys=v.public_keys("instance.public_keys", fields.get("public_keys", {})),
            metadata=v.string_map(
                "instance.metadata", fields.get("metadata", {}), v.MAX_METADATA_ITEMS, MAX_METADATA_VALUE
            ),
            availability_zone=v.text("instance.availability_zone", fields.get("availability_zone", "")),
            host=v.text("instance.host", fields.get("host", "")),
        )
        with self.lock:
            self._commit([instance])
        log.info("instance created", instance_id=instance_id, hostname=hostname)
        return self._get(instance_id)

    def update_instance(self, instance_id: str, changes: Mapping[str, Any]) -> Instance:
        INSTANCE_RULES.check(changes)
        updates: dict[str, Any] = {}
        for name in ("name", "availability_zone", "host"):
            if name in changes:
                updates[name] = v.text(f"instance.{name}", changes[name])
        if "user_data" in changes:
            updates["user_data"] = v.user_data("instance.user_data", changes["user_data"])
        if "public_keys" in changes:
            updates["public_keys"] = v.public_keys("instance.public_keys", changes["public_keys"])
        if "metadata" in changes:
            updates["metadata"] = v.string_map(
                "instance.metadata", changes["metadata"], v.MAX_METADATA_ITEMS, MAX_METADATA_VALUE
            )
        with self.lock:
            instance = self._get(instance_id)
            if "hostname" in changes:
                # Empty: derive it from the (new) name again, as on create.
                name = updates.get("name", instance.name)
                updates["hostname"] = (
                    v.hostname("instance.hostname", changes["hostname"])
                    if changes["hostname"]
                    else v.sanitize_hostname(name, fallback=f"instance-{instance_id[:8]}")
                )
            new = dataclasses.replace(instance, **updates)
            if new != instance:
                self._commit([new])
            return self._get(instance_id)

    def delete_instance(self, instance_id: str) -> int:
        with self.lock:
            self._get(instance_id)
            revision = self._commit(deletes=[("instance", instance_id)])
        log.info("instance deleted", instance_id=instance_id, revision=revision)
        return revision
