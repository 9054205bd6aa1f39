"""Long-context question answering over documents passed by blob reference: the
``eval/LongContextQa.v1`` signature and its reward (answer match, and evidence that really
occurs in the cited document)."""

from dse.longctx._qa import (
    LONG_CONTEXT_QA,
    LONG_CONTEXT_QA_ID,
    Evidence,
    LongContextQaInput,
    LongContextQaOutput,
)
from dse.longctx._reward import (
    LONG_CONTEXT_REWARD_ID,
    LONG_CONTEXT_REWARD_VERSION,
    AnswerMatch,
    EvidenceInDocument,
    long_context_reward,
    normalize_answer,
)

__all__ = [
    "LONG_CONTEXT_QA",
    "LONG_CONTEXT_QA_ID",
    "LONG_CONTEXT_REWARD_ID",
    "LONG_CONTEXT_REWARD_VERSION",
    "AnswerMatch",
    "Evidence",
    "EvidenceInDocument",
    "LongContextQaInput",
    "LongContextQaOutput",
    "long_context_reward",
    "normalize_answer",
]
