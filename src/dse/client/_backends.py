"""The two transports under one client: in-process (store + LM + Predictor) and over HTTP.

The client (:mod:`dse.client._client`) owns the policy: which loop runs a call, sync and async
entry points, closing, flushing at exit. A backend only answers the two calls and knows how to
flush and release what it holds.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from dse.app import LoadedApp
from dse.client._http import API, JsonApi, RemoteError
from dse.client._models import ClientPrediction
from dse.lm import LM
from dse.rollout import FeedbackResult
from dse.runtime import Predictor, ReceiptWriter
from dse.service import record_feedback_flushing
from dse.store import Store

B = TypeVar("B", bound=BaseModel)


class Backend(Protocol):
    async def predict(
        self, signature_id: str, value: dict[str, Any] | BaseModel, thread: str | None
    ) -> ClientPrediction: ...

    async def feedback(
        self,
        receipt_id: str,
        *,
        reward: float,
        source: str,
        correct_output: dict[str, Any] | None,
    ) -> FeedbackResult: ...

    def flush(self, timeout_s: float) -> None:
        """Persist every receipt handed over so far; safe from any thread."""

    def dropped_receipts(self) -> int: ...

    async def aclose_async(self) -> None:
        """Release what lives on the client's loop (LM clients, HTTP connections)."""

    def close_sync(self, timeout_s: float) -> None:
        """Flush and release the rest (receipt writer, store), after no call is running."""


class LocalBackend:
    """Predict against the store this process opened; receipts go through one writer."""

    def __init__(
        self, store: Store, lm: LM, app: LoadedApp, *, writer: ReceiptWriter | None = None
    ) -> None:
        self.store = store
        self.lm = lm
        self.app = app
        self.writer = writer or ReceiptWriter(store)
        self.predictor = Predictor(store, lm, app.app.signatures, self.writer)

    async def predict(
        self, signature_id: str, value: dict[str, Any] | BaseModel, thread: str | None
    ) -> ClientPrediction:
        # The Predictor reads the routing rows from the store on every call (canary -> active
        # pointer -> defaults), so a promotion by another process is seen on the next call.
        prediction = await self.predictor.predict(signature_id, value, thread_key=thread)
        receipt = prediction.receipt
        return ClientPrediction(
            signature_id=receipt.signature_id,
            output=prediction.output.model_dump(mode="json"),
            compiled_id=prediction.compiled_id,
            receipt_id=prediction.receipt_id,
            source=prediction.source,
            arm=prediction.arm,
            model_used=list(receipt.model.used),
            duration_ms=receipt.duration_ms,
        )

    async def feedback(
        self,
        receipt_id: str,
        *,
        reward: float,
        source: str,
        correct_output: dict[str, Any] | None,
    ) -> FeedbackResult:
        # In a worker thread: it may wait for the writer's flush and always writes the store,
        # and predictions running on this loop should not wait behind it.
        return await asyncio.to_thread(
            record_feedback_flushing,
            self.store,
            receipt_id,
            reward=reward,
            source=source,
            correct_output=correct_output,
            signatures=self.app.app.signatures,
            flush=self.writer.flush,
        )

    def flush(self, timeout_s: float) -> None:
        self.writer.flush(timeout_s)

    def dropped_receipts(self) -> int:
        return self.writer.stats.dropped

    async def aclose_async(self) -> None:
        await self.lm.aclose()

    def close_sync(self, timeout_s: float) -> None:
        try:
            self.writer.close(timeout_s)
        finally:
            self.store.close()


class RemoteBackend:
    """Predict and feedback over the server's API; the server writes the receipts."""

    def __init__(self, api: JsonApi) -> None:
        self.api = api

    async def predict(
        self, signature_id: str, value: dict[str, Any] | BaseModel, thread: str | None
    ) -> ClientPrediction:
        raw = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        path = f"/signatures/{quote(signature_id, safe='/')}/predict"
        body = await self.api.call("POST", path, json={"input": raw, "thread_key": thread})
        return _parsed(ClientPrediction, {"signature_id": signature_id, **body}, path)

    async def feedback(
        self,
        receipt_id: str,
        *,
        reward: float,
        source: str,
        correct_output: dict[str, Any] | None,
    ) -> FeedbackResult:
        path = f"/receipts/{quote(receipt_id, safe='')}/feedback"
        body = {"reward": reward, "source": source, "correct_output": correct_output}
        # Feedback is idempotent per (receipt, source), so a lost answer may be retried.
        answer = await self.api.call("POST", path, json=body, idempotent=True)
        return _parsed(FeedbackResult, answer, path)

    def flush(self, timeout_s: float) -> None:
        return None

    def dropped_receipts(self) -> int:
        return 0

    async def aclose_async(self) -> None:
        await self.api.aclose()

    def close_sync(self, timeout_s: float) -> None:
        return None


def _parsed(model: type[B], body: dict[str, Any], path: str) -> B:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RemoteError(
            f"POST {API}{path}: the server's answer is not a {model.__name__}: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}",
            endpoint=f"POST {API}{path}",
        ) from None
