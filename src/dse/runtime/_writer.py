"""Receipt persistence: a bounded buffer drained by a group-commit thread.

Two modes, chosen when the writer is made:

- **durable** (the default): :meth:`ReceiptWriter.write` returns only after the transaction that
  holds the receipt has committed, as a database acknowledges a commit. Predictions arriving
  while one commit is running queue up and share the next one, so concurrency still costs one
  transaction per group, not per receipt; a caller waits for a commit, it does not linger for
  company. An answered prediction then always has its receipt, even if the process is killed
  right after answering.
- **write-behind** (``durable=False``): ``write`` returns once the receipt is queued, and the
  thread commits groups in the background (lingering briefly to fill them). Lower latency, but a
  SIGKILL loses what is still queued; for callers that prefer that trade knowingly.

In both modes one bad receipt never costs a good one: a batch the store refuses is split in
halves until the refused rows are alone, and only those are dropped. Nothing is dropped
silently: every receipt is written or counted in ``stats.dropped`` and logged with its id, and
``stats.failing`` says the writer is currently storing nothing (e.g. a full disk), which
``/healthz`` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass

from dse.runtime._receipt import Receipt
from dse.store import ReceiptRow, Store

log = logging.getLogger(__name__)
_STOP = object()
WRITE_BEHIND_LINGER_S = 0.02

# A queued receipt and, in durable mode, the future its caller awaits (True: committed).
_Item = tuple[Receipt, asyncio.Future[bool] | None]


@dataclass
class WriterStats:
    """What the writer did so far; ``failing`` is the current state, the rest are totals."""

    written: int = 0
    dropped: int = 0
    failed_batches: int = 0
    failing: bool = False
    last_error: str | None = None


class ReceiptWriter:
    """Group-commits receipts to the store; durable (the caller waits for the commit) by default.

    ``durable=False`` is write-behind: the caller only waits for a place in the buffer.
    ``linger_s`` (default: 0 when durable, 20 ms write-behind) is how long the thread waits for
    more receipts before committing a group; a durable caller is waiting, so it does not linger.
    """

    def __init__(
        self,
        store: Store,
        *,
        durable: bool = True,
        capacity: int = 10_000,
        batch_size: int = 256,
        linger_s: float | None = None,
        enqueue_timeout_s: float = 1.0,
        commit_timeout_s: float = 60.0,
        retries: int = 3,
    ) -> None:
        self._store = store
        self.durable = durable
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        if linger_s is None:
            linger_s = 0.0 if durable else WRITE_BEHIND_LINGER_S
        self._linger_s = linger_s
        self._enqueue_timeout_s = enqueue_timeout_s
        self._commit_timeout_s = commit_timeout_s
        self._retries = retries
        self.stats = WriterStats()
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._lingering = False
        self._thread = threading.Thread(target=self._run, name="dse-receipts", daemon=True)
        self._thread.start()

    async def write(self, receipt: Receipt) -> bool:
        """Persist ``receipt`` according to the mode; False means it was dropped (and counted).

        Durable: True once the group commit holding it is done; False when the commit is not
        confirmed within ``commit_timeout_s`` (a stalled store or writer thread never hangs a
        caller). Write-behind: True once queued.
        """
        if not self.durable:
            return self.submit(receipt)
        if self._closed:
            return not self._write_batch([(receipt, None)])
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[bool] = loop.create_future()
        if not self._enqueue((receipt, committed)):
            return False
        # One timer on the caller's loop rather than wait_for + shield: this runs per prediction.
        timer = loop.call_later(
            self._commit_timeout_s, _give_up, committed, receipt.receipt_id, self._commit_timeout_s
        )
        try:
            return await committed
        finally:
            timer.cancel()

    def submit(self, receipt: Receipt) -> bool:
        """Hand a receipt over without waiting for its commit (write-behind, in either mode).

        Waits briefly when the buffer is full, then counts a drop and returns False.
        """
        if self._closed:
            return not self._write_batch([(receipt, None)])
        return self._enqueue((receipt, None))

    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every submitted receipt has been written or counted as dropped.

        After ``close`` there is nothing to wait for (a receipt submitted then is written on
        the spot), so this returns at once instead of waiting for a thread that has ended.
        """
        if self._closed or not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()
        done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        if self._closed:
            return
        self.flush(timeout_s)
        self._closed = True
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._drain_after_stop()

    def _enqueue(self, item: _Item) -> bool:
        try:
            self._queue.put(item, timeout=self._enqueue_timeout_s)
        except queue.Full:
            self._count_drop([item], "receipt buffer full")
            return False
        # A full batch need not wait out the linger; a lingering writer holds its first receipt.
        if self._linger_s > 0 and self._queue.qsize() + self._lingering >= self._batch_size:
            self._wake.set()
        return True

    def _drain_after_stop(self) -> None:
        """What reached the queue behind the stop marker (a ``submit`` or ``flush`` that saw the
        writer open just before ``close``): write the receipts now, release the waiters."""
        late: list[_Item] = []
        waiters: list[threading.Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                late.append(item)
            elif isinstance(item, threading.Event):
                waiters.append(item)
        if late:
            self._commit(late)
        for waiter in waiters:
            waiter.set()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if self._linger_s > 0 and isinstance(item, tuple):
                self._linger()
            batch: list[_Item] = []
            markers: list[threading.Event] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                elif isinstance(item, tuple):
                    batch.append(item)
                if stop or markers or len(batch) >= self._batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            for marker in markers:
                marker.set()
            if stop:
                return

    def _linger(self) -> None:
        """Let a group gather for ``linger_s`` by sleeping, not by taking each receipt as it
        comes: a thread woken per receipt would cost every caller a thread switch. A full
        batch, a flush or a close ends the wait early (they set ``_wake``)."""
        self._lingering = True
        if self._queue.qsize() + 1 < self._batch_size:  # +1: the receipt this thread holds
            self._wake.wait(self._linger_s)
        self._lingering = False
        self._wake.clear()

    def _commit(self, batch: list[_Item]) -> None:
        """Write a group and tell its durable callers whether their receipt is stored."""
        dropped = self._write_batch(batch)
        _settle([(waiter, id(receipt) not in dropped) for receipt, waiter in batch])

    def _write_batch(self, batch: list[_Item]) -> set[int]:
        """Store the batch; returns ``id()`` of the receipts dropped (each counted and logged).

        The whole batch is tried first, with retries (a locked database or a dropped connection
        passes); if it still fails, it is split until the rows the store refuses are alone, so
        one bad row never costs a good one. The split tries each part once: retrying every part
        of a batch that fails as a whole (a full disk) would take minutes.
        """
        rows: list[tuple[Receipt, ReceiptRow]] = []
        refused: list[tuple[Receipt, Exception]] = []
        for receipt, _ in batch:
            try:
                rows.append((receipt, to_row(receipt)))
            except Exception as exc:
                refused.append((receipt, exc))
        written = 0
        if rows:
            error = self._insert_with_retries([row for _, row in rows])
            if error is None:
                written = len(rows)
            else:
                written, bad = self._insert_split(rows, error)
                refused.extend(bad)
        with self._lock:
            self.stats.written += written
            if written:
                self.stats.failing = False
        if refused:
            self._count_drop(
                [(receipt, None) for receipt, _ in refused],
                "; ".join(f"{r.receipt_id}: {e}" for r, e in refused[:5]),
                failing=written == 0,
            )
        return {id(receipt) for receipt, _ in refused}

    def _insert_with_retries(self, rows: list[ReceiptRow]) -> Exception | None:
        error: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))
            try:
                self._store.insert_receipts(rows)
                return None
            except Exception as exc:
                error = exc
                with self._lock:
                    self.stats.failed_batches += 1
                log.warning(
                    "receipt batch of %d failed (attempt %d): %s", len(rows), attempt + 1, exc
                )
        return error

    def _insert_split(
        self, rows: list[tuple[Receipt, ReceiptRow]], error: Exception
    ) -> tuple[int, list[tuple[Receipt, Exception]]]:
        """Bisect a failed batch: (rows written, the refused receipts with their errors)."""
        if len(rows) == 1:
            return 0, [(rows[0][0], error)]
        middle = len(rows) // 2
        written = 0
        refused: list[tuple[Receipt, Exception]] = []
        for part in (rows[:middle], rows[middle:]):
            try:
                self._store.insert_receipts([row for _, row in part])
            except Exception as exc:
                part_written, part_refused = self._insert_split(part, exc)
                written += part_written
                refused.extend(part_refused)
            else:
                written += len(part)
        return written, refused

    def _count_drop(self, items: list[_Item], why: str, *, failing: bool = True) -> None:
        with self._lock:
            self.stats.dropped += len(items)
            self.stats.last_error = why[:500]
            if failing:
                self.stats.failing = True
        ids = ", ".join(receipt.receipt_id for receipt, _ in items[:20])
        log.error("dropped %d receipt(s) [%s]: %s", len(items), ids, why)


def _settle(outcomes: list[tuple[asyncio.Future[bool] | None, bool]]) -> None:
    """Resolve durable callers' futures on their own event loops, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool]]] = {}
    for waiter, stored in outcomes:
        if waiter is not None:
            by_loop.setdefault(waiter.get_loop(), []).append((waiter, stored))
    for loop, waiters in by_loop.items():
        # A closed loop (RuntimeError) has nobody waiting for these any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, waiters)


def _give_up(committed: asyncio.Future[bool], receipt_id: str, timeout_s: float) -> None:
    """The commit was not confirmed in time: the caller gets False (a later outcome is ignored)."""
    if not committed.done():
        log.error("receipt %s: commit not confirmed within %.0f s", receipt_id, timeout_s)
        committed.set_result(False)


def _resolve(waiters: list[tuple[asyncio.Future[bool], bool]]) -> None:
    for waiter, stored in waiters:
        if not waiter.done():  # a caller that was cancelled or gave up no longer listens
            waiter.set_result(stored)


def to_row(receipt: Receipt) -> ReceiptRow:
    return ReceiptRow(
        receipt_id=receipt.receipt_id,
        created_at=receipt.created_at,
        signature_id=receipt.signature_id,
        compiled_id=receipt.compiled_id,
        strategy_id=receipt.strategy_id,
        thread_key=receipt.thread_key,
        arm=receipt.arm,
        status=receipt.result.status,
        error_name=receipt.result.error_name,
        model_used=receipt.model.used[0] if receipt.model.used else None,
        duration_ms=receipt.duration_ms,
        body=receipt.model_dump(mode="json"),
        reward=receipt.reward,
    )
