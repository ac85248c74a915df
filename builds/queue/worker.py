"""The reference build worker (``manage.py run_build_worker``): N slots claiming builds through the SQL API.

- Idle slots sleep on a condition that a listener thread signals for each ``NOTIFY build_queue`` (sent by
  ``enqueue_build`` at commit), so a new build is claimed within milliseconds; they also poll every
  ``poll_interval`` seconds as a safety net (a notification can be missed while every slot is busy). While a
  slot waits, the worker is registered with ``build_wait`` (before the slot's last look for a build), so that a
  freed license slot is announced too; the listener renews the registration and ends it (``build_wait_end``) once
  no slot has waited for ``WAIT_LINGER`` seconds. A fleet with every slot busy is registered nowhere, and its
  completions send no wake-up (each would make the others' commits wait: builds/sql/0043_slot_waiters.sql).
- A heartbeat thread re-reports each running build's progress every ``heartbeat_interval`` seconds, so a long
  stage without progress is not mistaken for a dead worker; it also runs ``handle_build_timeouts`` every
  ``reap_interval`` seconds, so builds of crashed workers are rescued within their heartbeat timeout plus that
  interval, not after an hourly job.
- On SIGTERM/SIGINT it stops claiming, lets running builds finish for ``grace`` seconds, then stops them and
  hands them back to the queue (``release_build``: queued again at once, no retry spent). A second signal skips
  the grace period. Nothing it holds is lost: each build ends completed, released, or (if the process is killed
  outright) rescued by the heartbeat timeout.
- A dropped database connection (a terminated backend, a network blip) is the worker's problem, not the build's:
  every database call a running build depends on (progress, artifacts, completion) goes through ``db_retry``,
  which logs one line, reconnects with backoff and calls again. If the database stays away, the build is handed
  back (``release_build``: no retry spent) or, failing that too, left to the heartbeat rescue; it is never marked
  failed for it.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from builds.queue import client
from builds.queue.client import QueueClient
from builds.queue.executors import ClaimedBuild, Outcome
from honua import errors
from honua.sqlapi import Statement

logger = logging.getLogger("builds.worker")  # the name operators configure; unchanged by the move to builds/queue/
T = TypeVar("T")

CHANNEL = "build_queue"
WAIT_RENEW = 20.0  # seconds between renewals of the build_wait registration (it lapses after a minute)
WAIT_LINGER = 2.0  # seconds without a waiting slot before the registration ends
# Build output goes through the SQL API (docs/sql-api.md, "Build output"), like any agent's.
LOG_CHUNK_BYTES = 64 * 1024  # append_build_log's limit per call
LOG_FLUSH_BYTES = 32 * 1024  # send buffered output when this much has gathered...
LOG_FLUSH_SECONDS = 2.0  # ...or when the oldest unsent line is this old (checked when a line arrives)
# The SQL API over each thread's Django connection: claims, completions, releases and heartbeats in autocommit (one
# round trip each), their errors raw for db_retry and the slots' handling; build output in a savepoint, its API
# errors as honua.errors exceptions (an HN302 stops the executor).
CALLS = QueueClient(savepoint=False, translate=False)
OUTPUT = QueueClient()


# --- database resilience ------------------------------------------------------------------------------------------

CONNECTION_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
RETRY_ATTEMPTS = 6
RETRY_BACKOFF = 0.1  # seconds before the first reconnect; doubled after each failure
RETRY_MAX_BACKOFF = 2.0
# admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now (starting up, shutting down, recovery)
LOST_SQLSTATES = ("57P01", "57P02", "57P03")


class DatabaseUnavailable(Exception):
    """The database stayed unreachable through every reconnect ``db_retry`` tried."""


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost connection (worth a reconnect) rather than an error of the statement itself."""
    if not isinstance(exc, CONNECTION_ERRORS):
        return False
    if isinstance(exc, InterfaceError | psycopg.InterfaceError):
        return True
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    sqlstate = getattr(getattr(cause, "diag", None), "sqlstate", None)
    if sqlstate is None or sqlstate.startswith("08") or sqlstate in LOST_SQLSTATES:
        return True  # no SQLSTATE: the client lost the socket
    raw = connection.connection
    return raw is None or raw.closed or getattr(raw, "broken", False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def db_retry(call: Callable[[], T], *, what: str, attempts: int = RETRY_ATTEMPTS, backoff: float = RETRY_BACKOFF) -> T:
    """``call()`` (database work over this thread's connection, outside any transaction), surviving a dropped
    connection: on a lost connection it logs one line (no traceback), closes the connection, waits (exponential
    backoff up to ``RETRY_MAX_BACKOFF``), reconnects and calls again; after ``attempts`` losses it raises
    ``DatabaseUnavailable``. An error of the statement itself (a refused argument, a constraint) is raised at once.

    ``call`` must be safe to repeat: the lost attempt may or may not have committed (the SQL API answers a repeated
    ``complete_build`` with false, ``update_build_progress`` is idempotent)."""
    delay = backoff
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except CONNECTION_ERRORS as exc:
            if connection.in_atomic_block or not connection_lost(exc):
                raise
            connection.close()
            if attempt == attempts:
                logger.warning(
                    "database unreachable during %s (%s); giving up after %d attempts", what, _first_line(exc), attempts
                )
                raise DatabaseUnavailable(f"database unreachable during {what}") from None
            logger.warning(
                "database connection lost during %s (%s); reconnecting in %.2fs (attempt %d of %d)",
                what,
                _first_line(exc),
                delay,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_BACKOFF)
    raise AssertionError("unreachable")


def _outcome_values(outcome: Outcome) -> list:
    return [outcome.succeeded, outcome.image_reference, outcome.image_digest, outcome.error]


def _utf8_chunks(text: str, limit: int = LOG_CHUNK_BYTES) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-8 bytes, never inside a character."""
    data = text.encode()
    chunks, start = [], 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        chunks.append(data[start:end].decode())
        start = end
    return chunks


class _Context:
    """What an executor sees of its build (the ``BuildContext`` protocol)."""

    def __init__(self, worker: Worker, slot_id: str, build: ClaimedBuild):
        self.worker = worker
        self.worker_id = slot_id
        self.build = build
        self.stop = threading.Event()
        self.stop_reason: str | None = None  # "released" (shutdown), "lost" (no longer ours)
        self.percent = 0
        self.stage: str | None = None
        self.last_report = time.monotonic()
        self.started = time.monotonic()
        self.owner = threading.current_thread()  # the slot thread: the one whose connection sends output
        self.unsent: list[str] = []  # log lines not yet sent with append_build_log
        self.unsent_bytes = 0
        self.last_flush = time.monotonic()
        self._finish_calls: list[Statement] | None = None
        self._lock = threading.Lock()

    def progress(self, percent: int, stage: str | None = None) -> bool:
        self.percent, self.stage = percent, stage or self.stage
        held = self.worker._report(self, percent, stage)
        if not held:
            self.lose()
        return held and not self.stop.is_set()

    def log(self, line: str) -> None:
        """Buffer a line of output; it is sent with ``append_build_log`` once enough has gathered (or enough time
        has passed), and at the latest in the transaction that completes the build."""
        with self._lock:
            self.unsent.append(line)
            self.unsent_bytes += len(line.encode()) + 1
            due = self.unsent_bytes >= LOG_FLUSH_BYTES or time.monotonic() - self.last_flush >= LOG_FLUSH_SECONDS
        if self.worker.echo:
            self.worker.echo(f"{self.build.id} | {line}")
        if due and threading.current_thread() is self.owner:  # other threads (an executor's helpers) only buffer
            self.flush_log()

    def take_log_chunks(self) -> list[str]:
        """The unsent output as ``append_build_log`` chunks (emptying the buffer)."""
        with self._lock:
            text = "".join(line + "\n" for line in self.unsent)
            self.unsent, self.unsent_bytes, self.last_flush = [], 0, time.monotonic()
        return _utf8_chunks(text)

    def flush_log(self) -> None:
        for chunk in self.take_log_chunks():
            if self._output(client.append_build_log_sql(self.build.id, self.worker_id, chunk)) is None:
                return

    def artifact(
        self,
        *,
        kind: str,
        uri: str,
        media_type: str,
        content: bytes | None = None,
        digest: str | None = None,
        size_bytes: int | None = None,
        metadata: dict | None = None,
    ) -> int | None:
        """Attach an artifact (``attach_build_artifact``): its ``content``, or its ``digest`` and ``size_bytes``
        when the bytes are elsewhere (an image in a registry). Returns its id; None when the build is no longer
        this worker's or the license does not include that kind (SBOM, signature: logged, not attached)."""
        if content is not None:
            digest, size_bytes = "sha256:" + hashlib.sha256(content).hexdigest(), len(content)
        statement = client.attach_build_artifact_sql(
            self.build.id, self.worker_id, kind, uri, media_type, size_bytes, digest, metadata
        )
        try:
            return self._output(statement)
        except errors.MissingEntitlement as exc:
            self.log(f"not attached: {exc}")
            return None

    def metric(self, name: str, value: float, unit: str = "") -> int | None:
        """Record a sample about the build (``record_build_metric``); its id, or None when the build is no longer
        this worker's."""
        return self._output(client.record_build_metric_sql(self.build.id, self.worker_id, name, value, unit))

    def _output(self, statement: Statement):
        """One build-output call in a savepoint. A build this worker no longer holds (HN302) stops the executor
        and returns None; other API errors are raised as honua.errors exceptions. Survives a dropped connection
        (``db_retry``): attaching is idempotent; a log chunk or metric whose commit was lost with its reply may be
        sent twice."""

        def call():
            try:  # in a savepoint; anything but an API error (a lost connection) propagates for db_retry
                return OUTPUT.output(statement)
            except errors.BuildNotHeld:
                self.lose()
                return None

        return db_retry(call, what=f"sending output of build {self.build.id}")

    def finish_calls(self) -> list[Statement]:
        """What is sent just before the build is completed, in the same transaction: the unsent log, the queue
        wait and the run time."""
        if self._finish_calls is None:  # computed once: a retry of the finish sends the same
            build_id, worker_id = self.build.id, self.worker_id
            calls = [client.append_build_log_sql(build_id, worker_id, chunk) for chunk in self.take_log_chunks()]
            calls.append(client.record_queue_wait_sql(build_id, worker_id))
            calls.append(
                client.record_build_metric_sql(build_id, worker_id, "run_seconds", time.monotonic() - self.started, "s")
            )
            self._finish_calls = calls
        return self._finish_calls

    def lose(self) -> None:
        self.stop_reason = self.stop_reason or "lost"
        self.stop.set()

    def release(self) -> None:
        self.stop_reason = self.stop_reason or "released"
        self.stop.set()


class Worker:
    def __init__(
        self,
        *,
        executor: Callable[[_Context], Outcome],
        concurrency: int = 1,
        worker_id: str | None = None,
        poll_interval: float = 5.0,
        heartbeat_interval: float = 15.0,
        reap_interval: float = 15.0,
        grace: float = 30.0,
        max_builds: int | None = None,
        exit_when_idle: bool = False,
        synchronous_commit: bool = True,
        echo: Callable[[str], None] | None = None,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.executor = executor
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.reap_interval = reap_interval
        self.grace = grace
        self.max_builds = max_builds
        self.exit_when_idle = exit_when_idle
        self.synchronous_commit = synchronous_commit
        self._local = threading.local()
        self.echo = echo
        self.stopping = threading.Event()  # no more claims
        self.finished = threading.Event()  # every slot has returned
        self.wake = threading.Condition()
        self.active: dict[str, _Context] = {}
        self.active_lock = threading.Lock()
        self.counts = {"completed": 0, "failed": 0, "released": 0, "lost": 0}
        self.counts_lock = threading.Lock()
        self._claimed = 0
        self._signals = 0
        # Builds claimed by one slot's batch for slots that were idle, with the claiming slot's id: the lease the
        # database knows them by (heartbeats and the completion use it).
        self._prefetched: list[tuple[ClaimedBuild, str]] = []
        self._leases: dict = {}
        self._idle_slots = 0
        # The build_wait registration: when it was last renewed (None: not registered) and when a slot last waited.
        # _wait_lock orders the registration's database calls with the changes to these.
        self._wait_lock = threading.Lock()
        self._wait_renewed: float | None = None
        self._waited_at = 0.0

    # --- lifecycle --------------------------------------------------------------------------------------------

    def install_signal_handlers(self) -> dict:
        """Stop gracefully on SIGTERM/SIGINT (main thread only); returns the previous handlers to restore."""
        return {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        self.request_stop(immediately=self._signals > 1)

    def request_stop(self, *, immediately: bool = False) -> None:
        """Stop claiming; running builds get ``grace`` seconds to finish (none if ``immediately``), then are
        handed back to the queue."""
        if not self.stopping.is_set():
            self.stopping.set()
            self._say(f"stopping: no new builds; {len(self.active)} running get {self.grace:g}s to finish")
            threading.Thread(target=self._release_after, args=(0 if immediately else self.grace,), daemon=True).start()
        elif immediately:
            self._release_all()
        with self.wake:
            self.wake.notify_all()

    def _release_after(self, seconds: float) -> None:
        if not self.finished.wait(seconds):
            self._release_all()

    def _release_all(self) -> None:
        with self.active_lock:
            for ctx in self.active.values():
                ctx.release()

    def run(self) -> dict:
        """Run until stopped (or idle, or ``max_builds``); returns the counts of what it did."""
        threads = [threading.Thread(target=self._listen, name="listener", daemon=True)]
        threads.append(threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True))
        slots = [
            threading.Thread(target=self._slot, args=(f"{self.worker_id}/{i}",), name=f"slot-{i}")
            for i in range(self.concurrency)
        ]
        for thread in threads + slots:
            thread.start()
        self._say(f"worker {self.worker_id} running {self.concurrency} slot(s), listening on {CHANNEL!r}")
        try:
            while any(slot.is_alive() for slot in slots):
                for slot in slots:
                    slot.join(0.2)
        finally:
            self.finished.set()
            self.stopping.set()
            threads[0].join(5)  # the listener ends the wake-up registration on its way out
        return dict(self.counts)

    def _say(self, message: str) -> None:
        logger.info(message)
        if self.echo:
            self.echo(message)

    # --- slots ------------------------------------------------------------------------------------------------

    def _take_ticket(self) -> bool:
        with self.counts_lock:
            if self.max_builds is not None and self._claimed >= self.max_builds:
                return False
            self._claimed += 1
            return True

    def _return_ticket(self) -> None:
        with self.counts_lock:
            self._claimed -= 1

    def _take_prefetched(self) -> ClaimedBuild | None:
        with self.counts_lock:
            if not self._prefetched:
                return None
            build, lease = self._prefetched.pop(0)
            self._leases[build.id] = lease
            return build

    def _release_prefetched(self) -> None:
        """Builds claimed for slots that will not run them go back to the queue at once."""
        with self.counts_lock:
            left, self._prefetched = self._prefetched, []
        for build, lease in left:
            self._return_ticket()
            try:
                self._release(lease, build, "worker stopping")
            except (DatabaseError, DatabaseUnavailable) as exc:
                self._log_db_error(f"could not release build {build.id}; the heartbeat timeout will rescue it", exc)

    def _extra_tickets(self) -> int:
        """Tickets for the slots waiting idle right now, so one claim_builds call can feed them all."""
        with self.counts_lock:
            extra = max(0, self._idle_slots - len(self._prefetched))
            if self.max_builds is not None:
                extra = min(extra, self.max_builds - self._claimed)
            self._claimed += extra
            return extra

    def _slot(self, slot_id: str) -> None:
        build = None
        try:
            while True:
                if build is None:
                    if self.stopping.is_set():
                        break
                    build = self._take_prefetched()
                    if build is None:
                        if not self._take_ticket():
                            self.stopping.set()
                            break
                        wanted = 1 + self._extra_tickets()
                        try:
                            builds = self._claim(slot_id, wanted)
                        except DatabaseError as exc:
                            self._log_db_error("claim failed; retrying", exc)
                            for _ in range(wanted):
                                self._return_ticket()
                            connection.close()
                            time.sleep(1)
                            continue
                        for _ in range(wanted - len(builds)):
                            self._return_ticket()
                        if builds[1:]:
                            with self.counts_lock:
                                self._prefetched.extend((extra, slot_id) for extra in builds[1:])
                            with self.wake:
                                self.wake.notify(len(builds) - 1)
                        build = builds[0] if builds else None
                    if build is None:
                        if self.exit_when_idle and self._idle():
                            break
                        if self._start_waiting():
                            continue  # registered just now: one more look, then wait
                        with self.wake:
                            if not self.stopping.is_set():
                                self._idle_slots += 1
                                # Draining: others' builds may still fail back into the queue, so look again soon.
                                self.wake.wait(0.05 if self.exit_when_idle else self.poll_interval)
                                self._idle_slots -= 1
                        continue
                build = self._execute(slot_id, build)
        finally:
            self._release_prefetched()
            connection.close()

    def _prepare_session(self) -> None:
        """With synchronous_commit off, this worker's claims and completions do not wait for the WAL flush. A
        server crash can then forget the last fraction of a second of them: a forgotten completion is rescued by
        the heartbeat timeout and built again, a forgotten claim is claimed again (the first worker's completion
        then returns false). At-least-once either way; nothing is corrupted."""
        if self.synchronous_commit:
            return
        connection.ensure_connection()
        if getattr(self._local, "raw", None) is not connection.connection:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
            self._local.raw = connection.connection

    def _claim(self, slot_id: str, limit: int = 1) -> list[ClaimedBuild]:
        self._prepare_session()
        return CALLS.claim_builds(slot_id, limit)

    def _start_waiting(self) -> bool:
        """Register this worker with ``build_wait`` unless it is: True when it registered just now, so the slot
        looks for a build once more before it waits (a slot freed before the registration is found by that look,
        one freed after it is announced). A failure is logged and the slot polls."""
        with self._wait_lock:
            self._waited_at = time.monotonic()
            if self._wait_renewed is not None:
                return False
            try:
                CALLS.build_wait(self.worker_id)
            except (DatabaseError, DatabaseUnavailable) as exc:
                self._log_db_error("could not register for wake-ups; polling", exc)
                connection.close()
                return False
            self._wait_renewed = self._waited_at
            return True

    def _tend_waiting(self) -> None:
        """(Listener thread.) Renew the registration while a slot waits; end it once none has waited for
        WAIT_LINGER seconds."""
        with self.wake:
            waiting = self._idle_slots > 0
        with self._wait_lock:
            if self._wait_renewed is None:
                return
            now = time.monotonic()
            if waiting:
                self._waited_at = now
                if now - self._wait_renewed >= WAIT_RENEW:
                    CALLS.build_wait(self.worker_id)
                    self._wait_renewed = now
            elif now - self._waited_at >= WAIT_LINGER:
                CALLS.build_wait_end(self.worker_id)
                self._wait_renewed = None

    def _end_waiting(self) -> None:
        with self._wait_lock:
            if self._wait_renewed is None:
                return
            try:
                CALLS.build_wait_end(self.worker_id)
            except (DatabaseError, DatabaseUnavailable) as exc:  # it lapses by itself within a minute
                self._log_db_error("could not end the wake-up registration", exc)
            self._wait_renewed = None

    def _idle(self) -> bool:
        """Drain mode: nothing was claimable and none of this worker's slots is running a build (a running build
        could still fail back into the queue, or free a license's slot for a queued one)."""
        with self.active_lock, self.counts_lock:
            return not self.active and not self._prefetched

    def _execute(self, slot_id: str, build: ClaimedBuild) -> ClaimedBuild | None:
        """Run one build and finish it; returns the next build, claimed in the same transaction as the finish
        (one commit per build instead of two), or None."""
        ctx = _Context(self, self._leases.pop(build.id, slot_id), build)
        with self.active_lock:
            self.active[slot_id] = ctx
        try:
            try:
                outcome = self.executor(ctx)
            except Exception as exc:
                if isinstance(exc, DatabaseUnavailable) or connection_lost(exc):
                    # The worker's database trouble, not the build's: hand it back, never fail it.
                    with self.active_lock:
                        self.active.pop(slot_id, None)
                    self._hand_back(slot_id, ctx, exc)
                    return None
                logger.exception("executor failed on build %s", build.id)
                outcome = Outcome(False, error=f"executor error: {type(exc).__name__}: {exc}"[:2000])
            with self.active_lock:
                self.active.pop(slot_id, None)
            if ctx.stop_reason is None:
                return self._complete_and_claim(slot_id, ctx, outcome)
            try:
                with transaction.atomic():
                    self._finish(slot_id, ctx, outcome)
                    if self.stopping.is_set() or not self._take_ticket():
                        return None
                    try:
                        following = next(iter(self._claim(slot_id)), None)
                    except BaseException:
                        self._return_ticket()
                        raise
                    if following is None:
                        self._return_ticket()
                    return following
            except DatabaseError as exc:
                self._log_db_error(
                    f"could not finish build {build.id} together with the next claim; finishing alone", exc
                )
                if connection_lost(exc):
                    connection.close()
                self._finish(slot_id, ctx, outcome)
                return None
        except (DatabaseError, DatabaseUnavailable) as exc:
            self._log_db_error(f"could not finish build {build.id}; the heartbeat timeout will rescue it", exc)
            connection.close()
            return None
        finally:
            with self.active_lock:
                self.active.pop(slot_id, None)

    def _complete_and_claim(self, slot_id: str, ctx: _Context, outcome: Outcome) -> ClaimedBuild | None:
        """The common case (nothing to log or release): ``complete_build`` and the next claim in one transaction,
        sent as one pipeline of server-prepared statements: one network round trip and one commit per build
        instead of four round trips. If it fails, the connection is dropped (the server rolls the transaction
        back, so neither happened) and the build is finished alone."""
        claim = not self.stopping.is_set() and self._take_ticket()
        try:
            self._prepare_session()
            connection.ensure_connection()
            raw = connection.connection
            with raw.cursor() as done_cursor, raw.cursor() as claim_cursor:
                with raw.pipeline():
                    raw.execute("BEGIN")
                    for sql, params in ctx.finish_calls():  # the rest of the log, queue wait, run time
                        raw.execute(sql, params, prepare=True)
                    done_cursor.execute(
                        *client.complete_build_sql(ctx.build.id, ctx.worker_id, *_outcome_values(outcome)), prepare=True
                    )
                    if claim:
                        claim_cursor.execute(*client.claim_builds_sql(slot_id, 1), prepare=True)
                    raw.execute("COMMIT")
                done = done_cursor.fetchone()[0]
                row = claim_cursor.fetchone() if claim else None
        except BaseException as exc:
            if claim:
                self._return_ticket()
            if not isinstance(exc, (DatabaseError, psycopg.Error)):
                raise
            self._log_db_error(
                f"could not finish build {ctx.build.id} together with the next claim; finishing alone", exc
            )
            connection.close()
            self._finish(slot_id, ctx, outcome)
            return None
        self._count(("completed" if outcome.succeeded else "failed") if done else "lost")
        if row is None:
            if claim:
                self._return_ticket()
            return None
        return client.claimed_build(row)

    def _finish(self, slot_id: str, ctx: _Context, outcome: Outcome) -> None:
        build = ctx.build
        if ctx.stop_reason == "lost":
            self._count("lost")
            return
        for statement in ctx.finish_calls():
            try:
                ctx._output(statement)
            except errors.HonuaError:
                logger.exception("could not record the output of build %s", build.id)
        if ctx.stop_reason == "lost":
            self._count("lost")
            return
        if ctx.stop_reason == "released" and not outcome.succeeded:
            self._release(ctx.worker_id, build, "worker stopping")
            self._count("released")
            self._say(f"released build {build.id} back to the queue")
            return

        def complete() -> bool:
            return CALLS.complete_build(build.id, ctx.worker_id, *_outcome_values(outcome))

        done = db_retry(complete, what=f"completing build {build.id}")
        self._count(("completed" if outcome.succeeded else "failed") if done else "lost")

    def _release(self, lease: str, build: ClaimedBuild, reason: str) -> bool:
        """``release_build`` by the slot id the build was claimed under (queued again at once, no retry spent),
        through ``db_retry``."""

        def release() -> bool:
            return CALLS.release_build(build.id, lease, reason)

        return db_retry(release, what=f"releasing build {build.id}")

    def _hand_back(self, slot_id: str, ctx: _Context, exc: BaseException) -> None:
        """The database went away under a running build: release it (no retry spent) or, if the database is still
        unreachable, leave it to the heartbeat rescue. Never complete it as failed."""
        try:
            self._release(ctx.worker_id, ctx.build, "worker lost its database connection")
        except (DatabaseError, DatabaseUnavailable) as error:
            self._log_db_error(f"could not release build {ctx.build.id}; the heartbeat timeout will rescue it", error)
            connection.close()
            self._count("lost")
            return
        self._count("released")
        self._say(f"released build {ctx.build.id} back to the queue ({_first_line(exc)})")

    def _log_db_error(self, message: str, exc: BaseException) -> None:
        """One line for a lost connection (expected, handled); the traceback only for anything else."""
        if isinstance(exc, DatabaseUnavailable) or connection_lost(exc):
            logger.warning("%s: %s", message, _first_line(exc))
        else:
            logger.exception(message)

    def _count(self, key: str) -> None:
        with self.counts_lock:
            self.counts[key] += 1

    def _report(self, ctx: _Context, percent: int, stage: str | None) -> bool:
        """Progress and heartbeat over the calling thread's own connection, surviving a dropped connection."""

        def report() -> bool:
            return CALLS.heartbeat(ctx.build.id, ctx.worker_id, percent, stage)

        held = db_retry(report, what=f"reporting progress of build {ctx.build.id}")
        ctx.last_report = time.monotonic()
        return held

    # --- background threads -----------------------------------------------------------------------------------

    def _listen(self) -> None:
        """Wake one idle slot per notification on the build_queue channel."""
        while not self.finished.is_set():
            try:
                connection.ensure_connection()
                raw = connection.connection
                raw.execute(f"LISTEN {CHANNEL}")
                while not self.finished.is_set():
                    for _notice in raw.notifies(timeout=0.5):
                        with self.wake:
                            self.wake.notify()
                    self._tend_waiting()
            except Exception as exc:
                self._log_db_error("listener lost its connection; reconnecting", exc)
                connection.close()
                time.sleep(1)
        self._end_waiting()
        connection.close()

    def _heartbeat(self) -> None:
        """Heartbeat builds whose executor has been quiet, and rescue other workers' stuck builds."""
        next_reap = time.monotonic()
        tick = min(1.0, self.heartbeat_interval / 2)
        while not self.finished.wait(tick):
            try:
                now = time.monotonic()
                with self.active_lock:
                    quiet = [c for c in self.active.values() if now - c.last_report >= self.heartbeat_interval]
                for ctx in quiet:
                    if not ctx.stop.is_set() and not self._report(ctx, ctx.percent, None):
                        ctx.lose()
                if self.reap_interval and now >= next_reap:
                    next_reap = now + self.reap_interval
                    rescued = CALLS.handle_build_timeouts()
                    if rescued:
                        self._say(f"rescued {rescued} build(s) with a missed heartbeat")
            except (DatabaseError, DatabaseUnavailable) as exc:
                self._log_db_error("heartbeat failed; retrying", exc)
                connection.close()
        connection.close()
