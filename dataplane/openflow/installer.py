"""Make a bridge's flow table equal to a complete desired state, hitlessly, in one atomic bundle.

Ownership. The installer owns every table of the bridge it is given (br-int):
after a sync the bridge holds exactly the desired flows, and anything else —
flows of an older agent run, flows someone added by hand, OVS's default
``priority=0 actions=NORMAL`` — is removed. Cookies say why a flow exists
(see cookie.py); they do not decide ownership. Give the installer a bridge
only Loom programs.

Hitless. Flows are never cleared at start, and the installer only ever runs
with a *complete* desired state (a partial one would delete the rest; this
is how Neutron's agent lost traffic when its stale-flow sweep ran before the
full state was known). Every sync is one ONF bundle, committed atomically
(OVS publishes all of a bundle's changes as one classifier version, so a
packet sees the old table or the new one, never a mix):

* first sync on a connection (or after :meth:`FlowInstaller.forget`): dump the
  bridge, then diff the dump against the desired state; ADD every desired
  flow that is missing or differs (ADD over the same table, priority and match
  replaces the flow in place and keeps its counters), DELETE_STRICT every
  dumped (table, priority, match) that is not desired, using the raw match
  bytes from the dump. The encoder writes matches and instructions exactly as
  OVS dumps them, so flows that are already right compare equal and are left
  alone: a restarted agent sends nothing for an unchanged table.
* later syncs: the same diff against the in-memory state of the last commit.

Within the bundle, ADDs come first and DELETEs last: adds are streamed while
the desired iterable is still being consumed (and encoded), so Python
encoding overlaps OVS decoding the messages already sent; deletes need the
whole desired set to be known. The order is invisible to packets because the
commit is atomic, and a deleted key is never an added one.

Failure. OVS decodes each bundled flow mod when it arrives and reports a bad
one with that message's xid — but then still commits the rest of the bundle.
So before committing, the installer sends a barrier and collects errors for
the bundle's xids; any error discards the bundle. Errors at commit time (e.g.
a full table) fail the whole commit. Either way nothing changes on the switch
and :class:`BundleError` names each failing flow (xid -> flow) with os-ken's
decoded error. OVS discards a bundle idle for 10 s
(``other_config:bundle-idle-timeout``): ``desired`` must be an in-memory
iterable, not something that waits on the network.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType

from os_ken.ofproto import ofproto_v1_3 as ofp

from dataplane.common.logs import get_logger
from dataplane.contract.encode import BUNDLE_FLAGS, WireFlow, WireKey, bundle_add_flow_mod, describe
from dataplane.openflow.connection import (
    WRITE_BATCH_BYTES,
    ConnectionClosed,
    OFConnection,
    OFError,
    OpenFlowError,
)

log = get_logger(__name__)

_XID_BLOCK = 4096


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector for the duration of a sync.

    A sync allocates a few objects per flow while the caller holds its whole
    desired state (a million objects for 100k Flows); every automatic full
    collection then walks all of them: 0.3-0.4 s of a 1.4 s 100k-flow sync,
    measured here. The sync creates no reference cycles, so pausing loses
    nothing; reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync changed, and how long it took."""

    added: int
    modified: int
    deleted: int
    unchanged: int
    seconds: float
    from_dump: bool  # the diff started from a dump of the switch (first sync, or forced)
    bundle_id: int | None = None  # None: nothing to change, no bundle sent

    @property
    def changed(self) -> int:
        return self.added + self.modified + self.deleted


@dataclass(frozen=True, slots=True)
class FlowFailure:
    """One bundled flow mod the switch rejected."""

    command: str  # "add" or "delete"
    xid: int
    flow: WireFlow
    error: OFError

    def text(self) -> str:
        return f"{self.command} xid={self.xid} [{describe(self.flow)}]: {self.error.text}"


class BundleError(Exception):
    """The bundle was not committed; the switch's flow table is unchanged."""

    def __init__(self, reason: str, failures: list[FlowFailure], commit_error: OFError | None = None) -> None:
        lines = [reason, *(f.text() for f in failures)]
        if commit_error is not None:
            lines.append(f"commit: {commit_error.text}")
        super().__init__("\n  ".join(lines))
        self.failures = failures
        self.commit_error = commit_error


class DuplicateFlowError(BundleError):
    """The desired state holds two different flows for one (table, priority, match); nothing changed."""


@dataclass(slots=True)
class _Bundle:
    """The bundle being streamed in one sync."""

    bundle_id: int
    open_reply: Future[object]
    ops: dict[int, tuple[str, WireFlow]] = field(default_factory=dict)


class FlowInstaller:
    """Keeps one bridge's flows equal to the desired state given to :meth:`sync`."""

    def __init__(
        self,
        connection: OFConnection,
        *,
        batch_bytes: int = WRITE_BATCH_BYTES,
        reply_timeout: float = 60.0,
    ) -> None:
        self.connection = connection
        self.batch_bytes = batch_bytes
        self.reply_timeout = reply_timeout
        self._installed: dict[WireKey, WireFlow] | None = None
        # Dumped flows with timeouts or flags: equal WireFlows are not enough to leave them alone.
        self._suspect: set[WireKey] = set()
        self._pending: _Bundle | None = None  # opened, neither committed nor discarded yet
        self._log = log.bind(target=connection.target)

    @property
    def installed(self) -> Mapping[WireKey, WireFlow] | None:
        """The flows on the switch as of the last sync; None until the first sync (or after :meth:`forget`)."""
        return None if self._installed is None else MappingProxyType(self._installed)

    def forget(self) -> None:
        """Drop the in-memory state: the next sync dumps the switch first (e.g. after an OVS restart)."""
        self._installed = None
        self._suspect = set()

    # ------------------------------------------------------------ sync

    def sync(self, desired: Iterable[WireFlow]) -> SyncResult:
        """Make the bridge hold exactly ``desired`` (complete state), in one atomic bundle.

        Raises BundleError (nothing changed), DuplicateFlowError (nothing changed), or
        ConnectionClosed (outcome unknown: the next sync dumps the switch again).
        """
        start = time.perf_counter()
        from_dump = self._installed is None
        try:
            with _gc_paused():
                if from_dump:
                    self._load_from_switch()
                result = self._sync(desired, start, from_dump)
        except ConnectionClosed:
            self._pending = None
            self.forget()
            raise
        except BaseException:
            # E.g. the desired iterable raised while being streamed: drop the half-sent bundle now
            # rather than leave it to OVS's idle timeout. Nothing was committed.
            if self._pending is not None:
                try:
                    self._discard(self._pending)
                except ConnectionClosed:
                    self.forget()
            raise
        level = self._log.info if result.changed else self._log.debug
        level(
            "flows synced",
            added=result.added,
            modified=result.modified,
            deleted=result.deleted,
            unchanged=result.unchanged,
            seconds=round(result.seconds, 4),
            from_dump=from_dump,
        )
        return result

    def _load_from_switch(self) -> None:
        dumped = self.connection.dump_flows(timeout=self.reply_timeout)
        self._installed = {f.key: f.wire() for f in dumped}
        self._suspect = {f.key for f in dumped if not f.plain}

    def _sync(self, desired: Iterable[WireFlow], start: float, from_dump: bool) -> SyncResult:
        conn = self.connection
        installed = self._installed
        assert installed is not None
        suspect = self._suspect
        batch_bytes = self.batch_bytes
        new_state: dict[WireKey, WireFlow] = {}
        setdefault = new_state.setdefault
        get_installed = installed.get
        conflicts: list[tuple[WireFlow, WireFlow]] = []
        bundle: _Bundle | None = None
        ops: dict[int, tuple[str, WireFlow]] = {}
        xid = xid_end = 0
        buf = bytearray()
        add = ofp.OFPFC_ADD
        added = modified = unchanged = deleted = 0

        for wf in desired:
            key = (wf.table, wf.priority, wf.match)  # wf.key, without a Python-level property call
            first = setdefault(key, wf)
            if first is not wf:
                if first != wf:
                    conflicts.append((first, wf))
                continue
            old = get_installed(key)
            if old is not None and old == wf and key not in suspect:
                unchanged += 1
                continue
            if old is None:
                added += 1
            else:
                modified += 1
            if bundle is None:
                bundle = self._open_bundle()
            if xid == xid_end:
                xid = conn.allocate_xids(_XID_BLOCK)
                xid_end = xid + _XID_BLOCK
            ops[xid] = ("add", wf)
            buf += bundle_add_flow_mod(bundle.bundle_id, xid, add, wf)
            xid += 1
            if len(buf) >= batch_bytes:
                conn.send(buf)
                buf = bytearray()

        if conflicts:
            if bundle is not None:
                conn.send(buf)
                self._discard(bundle)
            first_a, first_b = conflicts[0]
            raise DuplicateFlowError(
                f"{len(conflicts)} desired flows share a (table, priority, match) with a different flow, "
                f"e.g. [{describe(first_a)}] and [{describe(first_b)}]",
                [],
            )

        delete = ofp.OFPFC_DELETE_STRICT
        for key, old in installed.items():
            if key in new_state:
                continue
            deleted += 1
            if bundle is None:
                bundle = self._open_bundle()
            if xid == xid_end:
                xid = conn.allocate_xids(_XID_BLOCK)
                xid_end = xid + _XID_BLOCK
            ops[xid] = ("delete", old)
            buf += bundle_add_flow_mod(bundle.bundle_id, xid, delete, old)
            xid += 1
            if len(buf) >= batch_bytes:
                conn.send(buf)
                buf = bytearray()

        if bundle is not None:
            bundle.ops = ops
            if buf:
                conn.send(buf)
            self._commit(bundle)

        self._installed = new_state
        self._suspect = set()
        return SyncResult(
            added,
            modified,
            deleted,
            unchanged,
            time.perf_counter() - start,
            from_dump,
            None if bundle is None else bundle.bundle_id,
        )

    # ------------------------------------------------------------ bundle control

    def _open_bundle(self) -> _Bundle:
        conn = self.connection
        bundle_id = conn.allocate_bundle_id()
        # Adds follow the open without waiting for its reply; the reply is checked before commit.
        reply = conn.bundle_control(bundle_id, ofp.ONF_BCT_OPEN_REQUEST, BUNDLE_FLAGS)
        self._pending = _Bundle(bundle_id, reply)
        return self._pending

    def _commit(self, bundle: _Bundle) -> None:
        conn = self.connection
        # OVS reports a bad bundled message with its xid but would still commit the others: make sure
        # every add has been judged (barrier) before deciding to commit.
        conn.barrier(timeout=self.reply_timeout)
        failures = self._failures(bundle)
        try:
            conn.wait(bundle.open_reply, self.reply_timeout, "bundle open reply")
        except OpenFlowError as exc:
            self._discard(bundle)
            raise self._report(BundleError(f"bundle {bundle.bundle_id} did not open", failures, exc.error)) from None
        if failures:
            self._discard(bundle)
            raise self._report(BundleError(f"bundle {bundle.bundle_id} discarded: flows rejected", failures))
        commit = conn.bundle_control(bundle.bundle_id, ofp.ONF_BCT_COMMIT_REQUEST, BUNDLE_FLAGS)
        self._pending = None  # OVS forgets the bundle after a commit, whether it succeeds or fails
        try:
            conn.wait(commit, self.reply_timeout, "bundle commit reply")
        except OpenFlowError as exc:
            # The failing message's own error precedes the commit's.
            raise self._report(
                BundleError(f"bundle {bundle.bundle_id} commit failed", self._failures(bundle), exc.error)
            ) from None

    def _discard(self, bundle: _Bundle) -> None:
        conn = self.connection
        self._pending = None
        try:
            conn.wait(
                conn.bundle_control(bundle.bundle_id, ofp.ONF_BCT_DISCARD_REQUEST, BUNDLE_FLAGS),
                self.reply_timeout,
                "bundle discard reply",
            )
        except OpenFlowError as exc:
            # The bundle may already be gone (OVS drops it on some errors); nothing was committed either way.
            self._log.debug("bundle discard refused", bundle_id=bundle.bundle_id, error=exc.error.text)

    def _failures(self, bundle: _Bundle) -> list[FlowFailure]:
        ops = bundle.ops
        errors = self.connection.pop_errors(ops)
        return [FlowFailure(ops[e.xid][0], e.xid, ops[e.xid][1], e) for e in sorted(errors, key=lambda e: e.xid)]

    def _report(self, error: BundleError) -> BundleError:
        self._log.error(
            "flow bundle not committed",
            failures=len(error.failures),
            first=error.failures[0].text() if error.failures else None,
            commit_error=error.commit_error.text if error.commit_error else None,
        )
        return error
