"""Predict: resolve the policy (canary -> active pointer -> defaults), run it, write a receipt."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from dse._canonical import sha256_id
from dse._ids import random_hex
from dse._validation import validation_problems
from dse.errors import DseError, InvalidInputError, NotFoundError, RenderError, StoreError
from dse.lm import LM, ModelConfig
from dse.runtime._budget import BudgetTracker
from dse.runtime._ensemble import resolve_strategy
from dse.runtime._limits import check_input_size
from dse.runtime._receipt import Receipt, ReceiptModel, ReceiptResult, ReceiptUsage
from dse.runtime._render import PromptTemplate, build_template
from dse.runtime._strategy import StrategyContext, StrategyRegistry
from dse.runtime._writer import ReceiptWriter
from dse.signature import Artifact, ModelRole, Params, Signature, SignatureRegistry
from dse.store import Store

Source = Literal["canary", "active", "defaults"]
_POLICY_CACHE_SIZE = 512
Arm = Literal["control", "candidate"]
# The receipts table's thread_key column (``NAME``): a longer key could not be stored.
THREAD_KEY_MAX = 200
_OK = ReceiptResult(status="ok")  # frozen, so every ok receipt can share it

#: Scores an answered labeled request from its receipt (output, usage, timing); the caller
#: closes over the label. The exerciser passes the signature's registered reward here, so the
#: canary compares arms on what compile and the gate optimized.
LabelReward = Callable[[Receipt], Awaitable[float]]


def canary_bucket(salt: str, key: str, signature_id: str) -> int:
    """Stable bucket in [0, 100) for ``salt:key:signature_id``; same inputs, same arm, forever."""
    digest = hashlib.sha256(f"{salt}:{key}:{signature_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True)
class ResolvedPolicy:
    compiled_id: str
    params: Params
    source: Source
    arm: Arm | None = None
    template: PromptTemplate | None = None


@dataclass(frozen=True)
class _Compiled:
    """What one policy of one signature fixes, worked out once: its verified params and the
    rendered prompt template.

    It keeps the signature it was made for, so a hit can be checked against the signature of
    the call: another object with a different contract (or defaults) never reuses it.
    """

    signature: Signature[Any, Any]
    compiled_id: str
    params: Params
    template: PromptTemplate
    contract_hashes: dict[str, str]
    model_configs: dict[ModelRole, ModelConfig] = field(default_factory=dict)

    def serves(self, signature: Signature[Any, Any], *, defaults: bool) -> bool:
        """True when this entry is exactly what would be built for ``signature`` now."""
        if self.signature is signature:
            return True
        if self.signature.contract_hashes != signature.contract_hashes:
            return False
        return not defaults or self.signature.defaults == signature.defaults


@dataclass(frozen=True)
class _Served:
    """The policy serving one call and why it was chosen."""

    compiled: _Compiled
    source: Source
    arm: Arm | None = None


@dataclass(frozen=True)
class Prediction:
    output: BaseModel
    compiled_id: str
    receipt_id: str
    source: Source
    arm: Arm | None
    duration_ms: float
    receipt: Receipt


class Predictor:
    """Runs signatures against the live registry; every call leaves exactly one receipt.

    With a durable writer (the default) an answer is returned only after its receipt has been
    committed; a receipt that cannot be stored turns the answer into a StoreError (503 over
    HTTP), because an answered prediction must always have its receipt. A write-behind writer
    (``ReceiptWriter(store, durable=False)``) returns the answer at once and counts a receipt it
    later fails to store as dropped instead.
    """

    def __init__(
        self,
        store: Store,
        lm: LM,
        signatures: SignatureRegistry,
        writer: ReceiptWriter,
        *,
        strategies: StrategyRegistry | None = None,
    ) -> None:
        self.store = store
        self.lm = lm
        self.signatures = signatures
        self.writer = writer
        self.strategies = strategies or StrategyRegistry.default()
        # (signature id, compiled_id or "" for the defaults) -> the policy worked out once.
        self._policies: dict[tuple[str, str], _Compiled] = {}

    async def predict(
        self,
        signature: str | Signature[Any, Any],
        value: BaseModel | dict[str, Any],
        *,
        thread_key: str | None = None,
        expected: dict[str, Any] | None = None,
        reward: LabelReward | None = None,
    ) -> Prediction:
        """Run one prediction. ``expected`` (a label, e.g. from the exerciser) makes the receipt
        carry a reward, which feeds the canary's online comparison: ``reward``'s score of the
        answer (exact match with ``expected`` without one; 0 for a failed prediction). A reward
        that fails leaves the receipt unscored rather than failing a good answer.

        A ``thread_key`` the store cannot hold (a NUL character, more than THREAD_KEY_MAX
        characters) is refused with InvalidInputError before anything runs: its receipt could
        never be written.
        """
        _check_thread_key(thread_key)
        check_input_size(value)
        sig = self.signatures.get(signature) if isinstance(signature, str) else signature
        receipt_id = "rcpt_" + random_hex(16)
        started = time.monotonic()
        created_at = datetime.now(UTC)
        raw_input = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        served: _Served | None = None
        budget: BudgetTracker | None = None
        ctx: StrategyContext | None = None
        try:
            parsed = self._parse_input(sig, value)
            served = self._serve(sig, thread_key or receipt_id)
            compiled = served.compiled
            budget = BudgetTracker(compiled.params.budgets)
            ctx = StrategyContext(
                signature=sig,
                params=compiled.params,
                input=parsed,
                lm=self.lm,
                budget=budget,
                template=compiled.template,
                model_configs=compiled.model_configs,
                blobs=self.store,
            )
            result = await resolve_strategy(self.strategies, compiled.params).run(ctx)
        except Exception as exc:
            error = exc if isinstance(exc, DseError) else None
            receipt = self._receipt(
                sig,
                receipt_id,
                created_at,
                started,
                thread_key,
                raw_input,
                served,
                ctx,
                budget,
                result=ReceiptResult(
                    status="error",
                    error_name=error.name if error else type(exc).__name__,
                    message=str(exc)[:2000],
                ),
                reward=None if expected is None else 0.0,
                trace_blob_id=_trace_blob_id(error),
            )
            # The caller gets the original error; a receipt the writer drops is counted there.
            await self.writer.write(receipt)
            if error is not None:
                error.details.setdefault("receipt_id", receipt_id)
            raise
        output = result.output.model_dump(mode="json")
        receipt = self._receipt(
            sig,
            receipt_id,
            created_at,
            started,
            thread_key,
            raw_input,
            served,
            ctx,
            budget,
            result=_OK,
            output=output,
            extra_hashes={
                "rendered_prompt_hash": result.rendered_prompt_hash,
                "output_hash": sha256_id(output),
            },
            repairs=result.repairs,
            reward=(
                None
                if expected is None or reward is not None
                else _exact_reward(sig, output, expected)
            ),
            trace_blob_id=result.trace_blob_id,
        )
        if expected is not None and reward is not None:
            receipt = receipt.model_copy(update={"reward": await _scored(reward, receipt)})
        if not await self.writer.write(receipt):
            raise StoreError(
                f"the prediction's receipt {receipt_id} could not be stored, so its answer is "
                "withheld (an answered prediction always has a receipt); see /healthz",
                receipt_id=receipt_id,
            )
        return Prediction(
            output=result.output,
            compiled_id=compiled.compiled_id,
            receipt_id=receipt_id,
            source=served.source,
            arm=served.arm,
            duration_ms=receipt.duration_ms,
            receipt=receipt,
        )

    def resolve(self, signature: Signature[Any, Any], key: str) -> ResolvedPolicy:
        """Canary (sticky by key) -> active pointer -> defaults pinned to this LM's model.

        The store is read on every request, so a promotion is seen on the very next one; what
        is cached is keyed by the compiled_id the store names (content-addressed, so it never
        goes stale) and checked against the running signature's contract.
        """
        served = self._serve(signature, key)
        compiled = served.compiled
        return ResolvedPolicy(
            compiled.compiled_id, compiled.params, served.source, served.arm, compiled.template
        )

    def load_artifact(self, signature: Signature[Any, Any], compiled_id: str) -> Artifact:
        """Load an artifact and check it against the running signature's contract."""
        body = self.store.get_artifact(compiled_id)
        if body is None:
            raise NotFoundError(
                f"{signature.id} points at artifact {compiled_id}, which is not in the store"
            )
        artifact = Artifact.model_validate(body)
        artifact.verify_against(signature)
        return artifact

    def _serve(self, signature: Signature[Any, Any], key: str) -> _Served:
        routing = self.store.routing(signature.id)
        canary = routing.canary
        if canary is not None and canary.enabled and canary.rollout_pct > 0:
            bucket = canary_bucket(canary.salt, key, signature.id)
            arm: Arm = "candidate" if bucket < canary.rollout_pct else "control"
            compiled_id = canary.candidate_id if arm == "candidate" else canary.control_id
            return _Served(self._compiled(signature, compiled_id), "canary", arm)
        if routing.active_id is not None:
            return _Served(self._compiled(signature, routing.active_id), "active")
        return _Served(self._compiled(signature, None), "defaults")

    def _compiled(self, signature: Signature[Any, Any], compiled_id: str | None) -> _Compiled:
        """The cached policy for ``compiled_id`` (None: the signature's defaults), made and
        verified on first use."""
        key = (signature.id, compiled_id or "")
        cached = self._policies.get(key)
        if cached is not None and cached.serves(signature, defaults=compiled_id is None):
            return cached
        if compiled_id is None:
            params = signature.defaults.with_model_id(self.lm.default_model_id)
            compiled_id = signature.compiled_id(params)
        else:
            params = self.load_artifact(signature, compiled_id).params
        if len(self._policies) >= _POLICY_CACHE_SIZE:
            self._policies.clear()
        compiled = _Compiled(
            signature=signature,
            compiled_id=compiled_id,
            params=params,
            template=build_template(signature, params),
            contract_hashes=signature.contract_hashes.model_dump(),
        )
        self._policies[key] = compiled
        return compiled

    def _parse_input(
        self, sig: Signature[Any, Any], value: BaseModel | dict[str, Any]
    ) -> BaseModel:
        if isinstance(value, sig.input_model):
            same: BaseModel = value
            return same
        raw = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        try:
            parsed: BaseModel = sig.input_model.model_validate(raw)
        except ValidationError as exc:
            problems = validation_problems(exc)
            raise RenderError(f"input does not match {sig.id}: {problems}") from None
        return parsed

    def _receipt(
        self,
        sig: Signature[Any, Any],
        receipt_id: str,
        created_at: datetime,
        started: float,
        thread_key: str | None,
        raw_input: dict[str, Any],
        served: _Served | None,
        ctx: StrategyContext | None,
        budget: BudgetTracker | None,
        *,
        result: ReceiptResult,
        output: dict[str, Any] | None = None,
        extra_hashes: dict[str, str] | None = None,
        repairs: int = 0,
        reward: float | None = None,
        trace_blob_id: str | None = None,
    ) -> Receipt:
        compiled = served.compiled if served else None
        params = compiled.params if compiled else sig.defaults
        model = params.model
        calls = ctx.calls if ctx else None
        contract = compiled.contract_hashes if compiled else sig.contract_hashes.model_dump()
        hashes = contract | (extra_hashes or {})
        return Receipt(
            receipt_id=receipt_id,
            created_at=created_at,
            signature_id=sig.id,
            compiled_id=compiled.compiled_id if compiled else "",
            source=served.source if served else "defaults",
            arm=served.arm if served else None,
            thread_key=thread_key,
            strategy_id=params.strategy.id,
            hashes=hashes,
            model=ReceiptModel(
                requested=model.model_id,
                used=list(calls.models_used) if calls else [],
                temperature=model.temperature,
                max_tokens=model.max_tokens,
            ),
            usage=ReceiptUsage(
                lm_calls=calls.lm_calls if calls else 0,
                cache_hits=calls.cache_hits if calls else 0,
                prompt_tokens=calls.prompt_tokens if calls else 0,
                completion_tokens=calls.completion_tokens if calls else 0,
                total_tokens=(calls.prompt_tokens + calls.completion_tokens) if calls else 0,
            ),
            duration_ms=round((time.monotonic() - started) * 1000.0, 3),
            budget=budget.snapshot() if budget else {"limits": {}, "usage": {}},
            repairs=repairs,
            input=raw_input,
            output=output,
            result=result,
            reward=reward,
            trace_blob_id=trace_blob_id,
        )


def _trace_blob_id(error: DseError | None) -> str | None:
    """The trace a failed strategy stored before raising, if it names one."""
    value = None if error is None else error.details.get("trace_blob_id")
    return value if isinstance(value, str) else None


def _check_thread_key(thread_key: str | None) -> None:
    if thread_key is None:
        return
    if "\x00" in thread_key:
        raise InvalidInputError(
            "thread_key contains a NUL character (\\x00), which the store cannot hold",
            field="thread_key",
        )
    if len(thread_key) > THREAD_KEY_MAX:
        raise InvalidInputError(
            f"thread_key is {len(thread_key)} characters, over the limit of {THREAD_KEY_MAX}",
            field="thread_key",
        )


async def _scored(reward: LabelReward, receipt: Receipt) -> float | None:
    try:
        return min(1.0, max(0.0, float(await reward(receipt))))
    except DseError:
        return None


def _exact_reward(
    signature: Signature[Any, Any], output: dict[str, Any], expected: dict[str, Any]
) -> float:
    try:
        label = signature.output_model.model_validate(expected).model_dump(mode="json")
    except ValidationError:
        return 0.0
    return 1.0 if output == label else 0.0
