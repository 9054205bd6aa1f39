"""Receipt persistence off the request path: a bounded buffer drained by a group-commit thread.

A storage failure never turns a good prediction into an error, and nothing is dropped silently:
every receipt is either written or counted in ``dropped`` (and logged).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from dse.runtime._receipt import Receipt
from dse.store import ReceiptRow, Store

log = logging.getLogger(__name__)
_STOP = object()


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0
    failed_batches: int = 0


class ReceiptWriter:
    def __init__(
        self,
        store: Store,
        *,
        capacity: int = 10_000,
        batch_size: int = 256,
        linger_s: float = 0.02,
        enqueue_timeout_s: float = 1.0,
        retries: int = 3,
    ) -> None:
        self._store = store
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._enqueue_timeout_s = enqueue_timeout_s
        self._retries = retries
        self.stats = WriterStats()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="dse-receipts", daemon=True)
        self._thread.start()

    def submit(self, receipt: Receipt) -> None:
        """Hand a receipt over; waits briefly when the buffer is full, then counts a drop."""
        if self._closed:
            self._write_batch([receipt])
            return
        try:
            self._queue.put(receipt, timeout=self._enqueue_timeout_s)
        except queue.Full:
            self._count_drop(1, "receipt buffer full")

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
        done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        if self._closed:
            return
        self.flush(timeout_s)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._drain_after_stop()

    def _drain_after_stop(self) -> None:
        """What reached the queue behind the stop marker (a ``submit`` or ``flush`` that saw the
        writer open just before ``close``): write the receipts now, release the waiters."""
        late: list[Receipt] = []
        waiters: list[threading.Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Receipt):
                late.append(item)
            elif isinstance(item, threading.Event):
                waiters.append(item)
        if late:
            self._write_batch(late)
        for waiter in waiters:
            waiter.set()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Receipt] = []
            markers: list[threading.Event] = []
            stop = False
            deadline = time.monotonic() + self._linger_s
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                elif isinstance(item, Receipt):
                    batch.append(item)
                if stop or markers or len(batch) >= self._batch_size:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch:
                self._write_batch(batch)
            for marker in markers:
                marker.set()
            if stop:
                return

    def _write_batch(self, batch: list[Receipt]) -> None:
        rows = [to_row(r) for r in batch]
        for attempt in range(self._retries + 1):
            try:
                self._store.insert_receipts(rows)
                with self._lock:
                    self.stats.written += len(batch)
                return
            except Exception as exc:
                with self._lock:
                    self.stats.failed_batches += 1
                log.warning("receipt batch write failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(min(0.05 * 2**attempt, 1.0))
        self._count_drop(len(batch), "store write failed after retries")

    def _count_drop(self, count: int, why: str) -> None:
        with self._lock:
            self.stats.dropped += count
        log.error("dropped %d receipt(s): %s", count, why)


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
