"""Runtime: render, decode, strategies, budgets, Predict and its receipts."""

from dse.runtime._budget import BudgetTracker
from dse.runtime._by_length import ByLengthConfig, ByLengthStrategy, input_chars
from dse.runtime._choices import (
    ChoiceSet,
    blank_input,
    choice_set,
    contrasted,
    enumerate_outputs,
    input_nodes,
    input_values,
    json_text_value,
    menu_matches,
    narrow_schema,
    neighbor_votes,
    pick_index,
    pointer_get,
)
from dse.runtime._decode import decode_output, first_balanced_object, parse_json, strip_fences
from dse.runtime._direct import DirectStrategy
from dse.runtime._ensemble import EnsembleStrategy, resolve_strategy
from dse.runtime._limits import MAX_PREDICT_INPUT_BYTES, input_size_problem
from dse.runtime._predict import (
    LabelReward,
    Prediction,
    Predictor,
    ResolvedPolicy,
    canary_bucket,
)
from dse.runtime._receipt import Receipt
from dse.runtime._render import PromptTemplate, build_template, render_messages
from dse.runtime._retrieve import demo_chars, within_chars
from dse.runtime._strategy import (
    BlobBackend,
    CallLog,
    Strategy,
    StrategyContext,
    StrategyRegistry,
    StrategyResult,
)
from dse.runtime._writer import ReceiptWriter, WriterStats

__all__ = [
    "MAX_PREDICT_INPUT_BYTES",
    "BlobBackend",
    "BudgetTracker",
    "ByLengthConfig",
    "ByLengthStrategy",
    "CallLog",
    "ChoiceSet",
    "DirectStrategy",
    "EnsembleStrategy",
    "LabelReward",
    "Prediction",
    "Predictor",
    "PromptTemplate",
    "Receipt",
    "ReceiptWriter",
    "ResolvedPolicy",
    "Strategy",
    "StrategyContext",
    "StrategyRegistry",
    "StrategyResult",
    "WriterStats",
    "blank_input",
    "build_template",
    "canary_bucket",
    "choice_set",
    "contrasted",
    "decode_output",
    "demo_chars",
    "enumerate_outputs",
    "first_balanced_object",
    "input_chars",
    "input_nodes",
    "input_size_problem",
    "input_values",
    "json_text_value",
    "menu_matches",
    "narrow_schema",
    "neighbor_votes",
    "parse_json",
    "pick_index",
    "pointer_get",
    "render_messages",
    "resolve_strategy",
    "strip_fences",
    "within_chars",
]
