"""Long-context strategies. RLM-lite: a controller LM works over long inputs kept in a var space
and content-addressed blobs, one JSON action per turn, executed by a deterministic kernel
(``rlm_lite.v1``). ``search.v1``: the zero-LM lexical lookup beside it."""

from dse.rlm._actions import (
    Action,
    ActionError,
    Chunk,
    ExtractOverChunks,
    Final,
    Load,
    Preview,
    Search,
    SubLm,
    WriteVar,
    action_schema,
    action_schema_for,
    decode_action,
)
from dse.rlm._blobs import (
    BLOB_ID_PATTERN,
    BlobAccess,
    BlobRef,
    MemoryBlobs,
    ScopedBlobs,
    StoreBlobs,
)
from dse.rlm._errors import KernelError
from dse.rlm._kernel import Kernel, SubModel
from dse.rlm._knobs import RlmKnobs, knobs_from_params
from dse.rlm._lexical import (
    SearchKnobs,
    SearchStrategy,
    answer_span,
    search_fits,
    search_knobs,
)
from dse.rlm._seed import blob_refs
from dse.rlm._strategy import STRATEGY_ID, RlmLiteStrategy
from dse.rlm._timeline import (
    RLM_TRACE_STRATEGIES,
    TRACE_FORMAT,
    BudgetUse,
    FallbackPass,
    Repair,
    TraceFormatError,
    TraceTimeline,
    Turn,
    decode_trace,
    timeline,
)
from dse.rlm._trace import RlmTrace, TraceEvent
from dse.rlm._vars import BlobVar, ListVar, Span, TextVar, VarSpace

__all__ = [
    "BLOB_ID_PATTERN",
    "RLM_TRACE_STRATEGIES",
    "STRATEGY_ID",
    "TRACE_FORMAT",
    "Action",
    "ActionError",
    "BlobAccess",
    "BlobRef",
    "BlobVar",
    "BudgetUse",
    "Chunk",
    "ExtractOverChunks",
    "FallbackPass",
    "Final",
    "Kernel",
    "KernelError",
    "ListVar",
    "Load",
    "MemoryBlobs",
    "Preview",
    "Repair",
    "RlmKnobs",
    "RlmLiteStrategy",
    "RlmTrace",
    "ScopedBlobs",
    "Search",
    "SearchKnobs",
    "SearchStrategy",
    "Span",
    "StoreBlobs",
    "SubLm",
    "SubModel",
    "TextVar",
    "TraceEvent",
    "TraceFormatError",
    "TraceTimeline",
    "Turn",
    "VarSpace",
    "WriteVar",
    "action_schema",
    "action_schema_for",
    "answer_span",
    "blob_refs",
    "decode_action",
    "decode_trace",
    "knobs_from_params",
    "search_fits",
    "search_knobs",
    "timeline",
]
