"""Filtering and pagination of in-memory object lists.

Objects are listed oldest first (tag order: tags grow with creation and are
never reused), so a page token is simply the tag of the last object returned:
pages stay stable while objects are created and deleted between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from controller.api.errors import invalid
from controller.model import Resource

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    items: list[R]
    revision: int  # the store revision the list was read at
    next_page_token: str  # empty on the last page


def paginate(
    revision: int,
    objects: Sequence[R],
    filters: Mapping[str, object],
    limit: int,
    page_token: str,
    extra: Callable[[R], bool] | None = None,
) -> Page[R]:
    """Objects whose attributes equal every non-empty filter value, one page of them."""
    after = 0
    if page_token:
        if not page_token.isdigit() or len(page_token) > 18:
            raise invalid("page_token", f"{page_token!r} is not a page token from a previous list")
        after = int(page_token)
    if limit < 0:
        raise invalid("limit", "must not be negative")
    active = [(name, value) for name, value in filters.items() if value not in ("", None)]
    out: list[R] = []
    more = False
    for obj in objects:
        if obj.tag <= after:
            continue
        if any(getattr(obj, name) != value for name, value in active):
            continue
        if extra is not None and not extra(obj):
            continue
        if limit and len(out) == limit:
            more = True
            break
        out.append(obj)
    return Page(out, revision, str(out[-1].tag) if more and out else "")
