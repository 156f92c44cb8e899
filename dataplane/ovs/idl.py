"""One python-ovs IDL connection to an Open_vSwitch database, served by a thread of its own.

The IDL (a replica of the tables we care about, kept current by the server's
monitor updates) is not thread-safe, so one thread owns it: it runs the IDL,
executes the transactions and reads that other threads submit, and hands every
batch of row changes to listeners (the interface monitor). ovsdbapp would give
us the same on top of python-ovs, but its Backend keeps the connection in a
class attribute, i.e. one database per process; the lab drives several
hypervisors' databases from one process, so we use python-ovs directly.

Writes go through :class:`TxnContext`, whose setters compare before writing, so
an "ensure" call that finds everything in place sends nothing to the server and
does not make ovs-vswitchd reconfigure.
"""

from __future__ import annotations

import os
import select
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

with warnings.catch_warnings():
    # python-ovs imports eventlet (when installed) only to check for monkey patching; eventlet warns on import.
    warnings.simplefilter("ignore")
    import ovs.db.idl
    import ovs.jsonrpc
    import ovs.poller
    import ovs.stream

from dataplane.common.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

SCHEMA_NAME = "Open_vSwitch"

# The tables and columns the driver and the monitor read or write. Columns that
# refer to tables we do not replicate (Bridge.controller, mirrors, ...) stay out.
COLUMNS: Mapping[str, Sequence[str]] = {
    "Open_vSwitch": ("bridges", "cur_cfg", "next_cfg", "external_ids"),
    "Bridge": ("name", "ports", "datapath_type", "fail_mode", "protocols", "other_config", "external_ids"),
    "Port": ("name", "interfaces", "external_ids", "other_config"),
    "Interface": (
        "name",
        "type",
        "options",
        "ofport",
        "ofport_request",
        "external_ids",
        "other_config",
        "error",
        "mac_in_use",
        "mtu_request",
        "bfd",
        "bfd_status",
    ),
}


class OvsdbError(RuntimeError):
    """An OVSDB operation failed; the message names the object and the reason."""


def default_remote() -> str:
    """The ovsdb-server socket of the OVS instance this process belongs to (honours OVS_RUNDIR)."""
    rundir = os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")
    return f"unix:{rundir}/db.sock"


def normalize_remote(remote: str | None) -> str:
    """Accept ``unix:/path``, ``tcp:host:port`` or a bare socket path."""
    if not remote:
        return default_remote()
    if remote.startswith(("unix:", "tcp:", "ssl:")):
        return remote
    return f"unix:{remote}"


def fetch_schema(remote: str, timeout: float) -> dict[str, Any]:
    """Ask the server for the Open_vSwitch schema, so the IDL matches what it serves."""
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote), int(timeout * 1000))
    if error:
        raise OvsdbError(f"cannot connect to ovsdb-server at {remote}: {os.strerror(error)}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        error, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("get_schema", [SCHEMA_NAME]))
    finally:
        rpc.close()
    if error or reply is None or reply.error:
        detail = os.strerror(error) if error else (reply.error if reply else "no reply")
        raise OvsdbError(f"cannot read the {SCHEMA_NAME} schema from {remote}: {detail}")
    return reply.result


def opt_value(value: list[Any]) -> Any | None:
    """An optional OVSDB column (a 0- or 1-element list in python-ovs) as a value or None."""
    return value[0] if value else None


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row change seen by the IDL: table name, event (create/update/delete), the row."""

    table: str
    event: str
    row: Any


ChangeListener = Callable[[ovs.db.idl.Idl, Sequence[RowChange], bool], None]
"""Called in the IDL thread with the IDL and a batch of changes; the flag is True after a (re)connect."""


class _RecordingIdl(ovs.db.idl.Idl):
    """An IDL that remembers the rows each run() changed, for the listeners."""

    def __init__(self, remote: str, helper: ovs.db.idl.SchemaHelper) -> None:
        super().__init__(remote, helper)
        self.changes: list[RowChange] = []

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        self.changes.append(RowChange(row._table.name, event, row))


@dataclass
class TxnContext:
    """What a transaction body gets: the IDL's tables to read and compare-then-write helpers."""

    idl: ovs.db.idl.Idl
    txn: ovs.db.idl.Transaction
    changed: bool = False
    inserted_interfaces: list[Any] = field(default_factory=list)

    def rows(self, table: str) -> list[Any]:
        return list(self.idl.tables[table].rows.values())

    def find(self, table: str, **match: Any) -> Any | None:
        """The first row of ``table`` whose columns equal ``match`` (e.g. name="br-int")."""
        for row in self.idl.tables[table].rows.values():
            if all(getattr(row, k) == v for k, v in match.items()):
                return row
        return None

    def root(self) -> Any:
        rows = self.rows("Open_vSwitch")
        if not rows:
            raise OvsdbError("the Open_vSwitch table has no row (database not initialised: run ovs-vsctl init)")
        return rows[0]

    def insert(self, table: str) -> Any:
        self.changed = True
        row = self.txn.insert(self.idl.tables[table])
        if table == "Interface":
            self.inserted_interfaces.append(row)
        return row

    def delete(self, row: Any) -> None:
        self.changed = True
        row.delete()

    def set(self, row: Any, column: str, value: Any) -> None:
        """Write a column only when its value differs (always, on a row this transaction inserted)."""
        try:
            same = getattr(row, column) == value
        except AttributeError:  # python-ovs: unset column of a new row
            same = False
        if not same:
            setattr(row, column, value)
            self.changed = True

    def set_keys(self, row: Any, column: str, values: Mapping[str, str]) -> None:
        """Set keys of a map column, leaving its other keys alone; write only what differs."""
        try:
            current = getattr(row, column)
        except AttributeError:
            current = {}
        for key, value in values.items():
            if current.get(key) != value:
                row.setkey(column, key, value)
                self.changed = True

    def del_keys(self, row: Any, column: str, keys: Sequence[str]) -> None:
        current = getattr(row, column)
        for key in keys:
            if key in current:
                row.delkey(column, key)
                self.changed = True

    def add_ref(self, row: Any, column: str, ref: Any) -> None:
        row.addvalue(column, ref)
        self.changed = True

    def remove_ref(self, row: Any, column: str, ref: Any) -> None:
        row.delvalue(column, ref)
        self.changed = True


class OvsdbClient:
    """A connection to one ovsdb-server, with the IDL run by a private thread.

    ``transact(body)`` runs ``body(ctx)`` in that thread, commits (retrying when
    another client changed what we read) and, like ovs-vsctl, waits until
    ovs-vswitchd has applied the change, so a port added has its ofport when
    the call returns. ``read(fn)`` runs ``fn(idl)`` there for a consistent view.
    """

    def __init__(self, remote: str | None = None, timeout: float = 10.0) -> None:
        self.remote = normalize_remote(remote)
        self.timeout = timeout
        self._idl: _RecordingIdl | None = None
        self._thread: threading.Thread | None = None
        self._jobs: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._jobs_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False
        self._closed = False
        self._listeners: list[ChangeListener] = []
        self._monitoring = False
        self._session_seqno = -1
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> OvsdbClient:
        """Connect, load the initial contents and start the IDL thread. Idempotent."""
        if self._thread is not None:
            return self
        helper = ovs.db.idl.SchemaHelper(schema_json=fetch_schema(self.remote, self.timeout))
        for table, columns in COLUMNS.items():
            helper.register_columns(table, list(columns))
        self._idl = _RecordingIdl(self.remote, helper)
        self._thread = threading.Thread(target=self._loop, name=f"ovsdb {self.remote}", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout):
            self.close()
            raise OvsdbError(f"ovsdb-server at {self.remote} did not send its contents within {self.timeout}s")
        if self._start_error is not None:
            raise OvsdbError(f"ovsdb IDL thread for {self.remote} failed: {self._start_error}")
        return self

    def close(self) -> None:
        """Stop the thread and close the connection. Idempotent."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(self.timeout)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> OvsdbClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API used by the driver and the monitor ------------------------------

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(idl, changes, resync)`` in the IDL thread after every batch of changes.

        It is first called at once (in the IDL thread) with no changes and resync=True, so
        it can read the current contents. Listeners must not block.
        """
        self.call(lambda: self._attach(listener))

    def remove_listener(self, listener: ChangeListener) -> None:
        self.call(lambda: self._listeners.remove(listener) if listener in self._listeners else None)

    def read(self, fn: Callable[[ovs.db.idl.Idl], T]) -> T:
        """Run ``fn(idl)`` in the IDL thread and return its result."""
        return self.call(lambda: fn(self._require_idl()))

    def transact(
        self,
        body: Callable[[TxnContext], T],
        *,
        what: str,
        wait_vswitchd: bool = True,
        timeout: float | None = None,
    ) -> T:
        """Run ``body`` in a transaction and commit it; ``what`` names the operation in errors."""
        return self.call(lambda: self._transact(body, what, wait_vswitchd, timeout or self.timeout))

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the IDL thread (inline when already there) and return its result."""
        if self._thread is None:
            raise OvsdbError(f"ovsdb client for {self.remote} is not started")
        if threading.current_thread() is self._thread:
            return fn()
        future: Future[T] = Future()
        with self._jobs_lock:
            if self._closed:
                raise OvsdbError(f"ovsdb client for {self.remote} is closed")
            self._jobs.append((fn, future))
        self._wake()
        return future.result()

    # -- the IDL thread --------------------------------------------------------

    def _require_idl(self) -> _RecordingIdl:
        assert self._idl is not None
        return self._idl

    def _attach(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)
        listener(self._require_idl(), (), True)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _loop(self) -> None:
        idl = self._require_idl()
        try:
            while not self._stopping:
                try:
                    self._iterate(idl)
                except Exception:
                    # A failed IDL step may have lost an update: reconnect, which reloads everything
                    # (listeners then get resync=True), rather than go on with a stale replica.
                    log.exception("ovsdb IDL step failed; reconnecting", remote=self.remote)
                    idl.force_reconnect()
                    time.sleep(0.1)
        except BaseException as exc:  # keep the reason for start() / the log
            self._start_error = exc
            self._ready.set()
            log.exception("ovsdb IDL thread failed", remote=self.remote)
        finally:
            with self._jobs_lock:
                self._closed = True
            self._fail_pending(OvsdbError(f"ovsdb client for {self.remote} closed"))
            idl.close()

    def _iterate(self, idl: _RecordingIdl) -> None:
        self._run_idl(idl)
        if not self._ready.is_set() and self._monitoring:
            self._ready.set()
        self._run_jobs()
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.fd_wait(self._wake_r, select.POLLIN)
        poller.block()
        try:
            os.read(self._wake_r, 4096)
        except OSError:
            pass

    def _run_idl(self, idl: _RecordingIdl) -> None:
        idl.run()
        # After a reconnect the IDL may reload everything without delete notifications,
        # so listeners get resync=True once the contents are current again.
        monitoring = idl.state == idl.IDL_S_MONITORING
        seqno = idl._session.get_seqno()
        resync = monitoring and (not self._monitoring or seqno != self._session_seqno)
        self._monitoring = monitoring
        if monitoring:
            self._session_seqno = seqno
        if resync:
            log.debug("ovsdb contents loaded", remote=self.remote)
        self._dispatch(idl, resync)

    def _dispatch(self, idl: _RecordingIdl, resync: bool = False) -> None:
        changes, idl.changes = idl.changes, []
        if not changes and not resync:
            return
        for listener in list(self._listeners):
            try:
                listener(idl, changes, resync)
            except Exception:
                log.exception("ovsdb change listener failed", remote=self.remote)

    def _run_jobs(self) -> None:
        with self._jobs_lock:
            jobs, self._jobs = self._jobs, []
        for fn, future in jobs:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
            # Changes seen while the job ran its own IDL loop go out now.
            self._dispatch(self._require_idl())

    def _fail_pending(self, exc: BaseException) -> None:
        with self._jobs_lock:
            jobs, self._jobs = self._jobs, []
        for _, future in jobs:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)

    def _transact(self, body: Callable[[TxnContext], T], what: str, wait_vswitchd: bool, timeout: float) -> T:
        idl = self._require_idl()
        deadline = time.monotonic() + timeout
        for _attempt in range(20):
            txn = ovs.db.idl.Transaction(idl)
            ctx = TxnContext(idl, txn)
            try:
                result = body(ctx)
            except BaseException:
                txn.abort()
                raise
            if not ctx.changed:
                txn.abort()
                return result
            if wait_vswitchd:
                ctx.root().increment("next_cfg")
            txn.add_comment(f"loom: {what}")
            status = self._commit(idl, txn, deadline, what)
            if status == ovs.db.idl.Transaction.TRY_AGAIN:
                # Someone changed what we read; wait for the IDL to catch up, then redo the body.
                self._wait_change(idl, idl.change_seqno, deadline, what)
                continue
            if status not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
                raise OvsdbError(f"{what}: transaction failed ({status}): {txn.get_error()}")
            if wait_vswitchd and status == ovs.db.idl.Transaction.SUCCESS:
                self._wait_vswitchd(idl, txn.get_increment_new_value(), deadline, what)
                self._check_interfaces(idl, txn, ctx.inserted_interfaces, what)
            return result
        raise OvsdbError(f"{what}: transaction kept conflicting with other clients")

    def _block(self, idl: _RecordingIdl, deadline: float, what: str, txn: Any = None) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OvsdbError(f"{what}: timed out after {self.timeout}s waiting for {self.remote}")
        poller = ovs.poller.Poller()
        idl.wait(poller)
        if txn is not None:
            txn.wait(poller)
        poller.timer_wait(int(remaining * 1000) + 1)
        poller.block()
        idl.run()

    def _commit(self, idl: _RecordingIdl, txn: Any, deadline: float, what: str) -> str:
        while True:
            status = txn.commit()
            if status != ovs.db.idl.Transaction.INCOMPLETE:
                return status
            self._block(idl, deadline, what, txn)

    def _wait_change(self, idl: _RecordingIdl, seqno: int, deadline: float, what: str) -> None:
        idl.run()
        while idl.change_seqno == seqno:
            self._block(idl, deadline, what)

    def _wait_vswitchd(self, idl: _RecordingIdl, next_cfg: int, deadline: float, what: str) -> None:
        while True:
            rows = list(idl.tables["Open_vSwitch"].rows.values())
            if rows and rows[0].cur_cfg >= next_cfg:
                return
            if time.monotonic() >= deadline:
                raise OvsdbError(
                    f"{what}: ovs-vswitchd did not apply the change within {self.timeout}s "
                    f"(is ovs-vswitchd running for {self.remote}?)"
                )
            self._block(idl, deadline, what)

    def _check_interfaces(self, idl: _RecordingIdl, txn: Any, inserted: Sequence[Any], what: str) -> None:
        table = idl.tables["Interface"].rows
        failed = []
        for row in inserted:
            real = txn.get_insert_uuid(row.uuid)
            iface = table.get(real) if real else None
            if iface is None:
                continue
            if iface.ofport == [-1] or iface.error:
                failed.append(f"{iface.name} ({iface.error[0] if iface.error else 'ofport -1'})")
        if failed:
            raise OvsdbError(f"{what}: ovs-vswitchd could not add interface(s): {', '.join(failed)}")
