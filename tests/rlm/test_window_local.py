"""Long inputs on the real local model with a small window (2,048 tokens): direct.v1 and
rlm_lite.v1's fallback fit their prompts into it instead of failing the call, as they did on
the 4,096-token default ("Requested tokens (5056) exceed context window of 4096")."""

from __future__ import annotations

import pytest

from dse.lm import Completion, LMRequest, LocalLM, WrappedLM, install_pack
from dse.rlm import BlobRef, MemoryBlobs, RlmLiteStrategy
from dse.runtime import BudgetTracker, DirectStrategy, StrategyContext
from dse.signature import Budgets, StrategyParams
from tests.rlm._helpers import QA, QaInput

pytestmark = pytest.mark.slow

PACK = "qwen2.5-coder-0.5b"
WINDOW = 2048
DOC = "\n".join(
    f"Entry {i}: the shipment to warehouse {i % 17} left on day {i % 28 + 1}." for i in range(900)
)


class _Recording(WrappedLM):
    """Keeps every completion, to read the prompt tokens the model really counted."""

    def __init__(self, inner: LocalLM) -> None:
        super().__init__(inner)
        self.seen: list[tuple[LMRequest, Completion]] = []

    async def complete(self, request: LMRequest) -> Completion:
        completion = await self.inner.complete(request)
        self.seen.append((request, completion))
        return completion


@pytest.fixture(scope="module")
def small_window() -> LocalLM:
    install_pack(PACK)
    return LocalLM.from_pack(PACK, n_ctx=WINDOW, timeout_s=300)


class _Blobs:
    """The store's blob calls over a MemoryBlobs, for direct.v1 (rlm_lite takes it as is)."""

    def __init__(self, memory: MemoryBlobs) -> None:
        self.memory = memory

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        return self.memory.put(text, mime)

    def get_blob(self, blob_id: str) -> str | None:
        return self.memory.texts.get(blob_id)


def _context(
    lm: _Recording, blobs: MemoryBlobs, strategy: StrategyParams, **update: object
) -> StrategyContext:
    params = QA.defaults.model_copy(update={"strategy": strategy, **update}).with_model_id(
        lm.default_model_id
    )
    return StrategyContext(
        signature=QA,
        params=params,
        input=QaInput(
            question="Which warehouse did entry 5 go to?",
            documents=[BlobRef(blob_id=blobs.put(DOC))],
        ),
        lm=lm,
        budget=BudgetTracker(params.budgets),
        blobs=_Blobs(blobs),
    )


def _fits(lm: _Recording) -> bool:
    return all(
        completion.usage.prompt_tokens + request.config.max_tokens <= WINDOW
        for request, completion in lm.seen
    )


async def test_direct_inlines_what_the_real_window_holds(small_window: LocalLM) -> None:
    lm = _Recording(small_window)
    ctx = _context(
        lm, MemoryBlobs(), StrategyParams(id="direct.v1", config={"inline_chars": 24_000})
    )
    result = await DirectStrategy().run(ctx)

    assert result.output.model_dump()["answer"]
    prompt = lm.seen[0][0].messages[-1].content
    assert "chars not shown]" in prompt and _fits(lm)


async def test_the_rlm_fallback_fits_chunks_and_notes_into_the_real_window(
    small_window: LocalLM,
) -> None:
    lm = _Recording(small_window)
    blobs = MemoryBlobs()
    ctx = _context(
        lm,
        blobs,
        StrategyParams(id="rlm_lite.v1"),
        budgets=Budgets(max_iterations=0),
        rlm_lite={"chunk_chars": 12_000, "max_chunks": 3, "sub_input_chars": 50_000},
    )
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.trace is not None and result.trace["rlm"]["fallback"] is True
    sub_prompts = [r.messages[-1].content for r, _ in lm.seen[:-1]]
    assert len(sub_prompts) == 3
    assert all(p.endswith("...[cut to fit the model's window]") for p in sub_prompts)
    assert _fits(lm)
