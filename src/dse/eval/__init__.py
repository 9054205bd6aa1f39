"""Datasets, rewards and evaluation."""

from dse.eval._budgeted import BudgetedLM, SpendBudget
from dse.eval._dataset import (
    ImportResult,
    ParsedDataset,
    RowError,
    import_dataset,
    import_dataset_text,
    jsonl_lines,
    parse_dataset_file,
    parse_dataset_text,
)
from dse.eval._evaluate import Candidate, CandidateEval, Evaluator, ProgressCallback
from dse.eval._mining import (
    MineResult,
    SkippedReceipt,
    example_id_for,
    import_mined,
    mine_corrections,
    mine_receipts,
)
from dse.eval._online import JudgeFactory, OnlineJudge
from dse.eval._reward import (
    CostPenalty,
    ExactMatch,
    FieldMatch,
    FormatValid,
    JudgeSignal,
    Outcome,
    RewardBundle,
    RewardScore,
    Signal,
    SignalScore,
    exact_match_reward,
)
from dse.eval._stats import PairedDelta, paired_bootstrap

__all__ = [
    "BudgetedLM",
    "Candidate",
    "CandidateEval",
    "CostPenalty",
    "Evaluator",
    "ExactMatch",
    "FieldMatch",
    "FormatValid",
    "ImportResult",
    "JudgeFactory",
    "JudgeSignal",
    "MineResult",
    "OnlineJudge",
    "Outcome",
    "PairedDelta",
    "ParsedDataset",
    "ProgressCallback",
    "RewardBundle",
    "RewardScore",
    "RowError",
    "Signal",
    "SignalScore",
    "SkippedReceipt",
    "SpendBudget",
    "exact_match_reward",
    "example_id_for",
    "import_dataset",
    "import_dataset_text",
    "import_mined",
    "jsonl_lines",
    "mine_corrections",
    "mine_receipts",
    "paired_bootstrap",
    "parse_dataset_file",
    "parse_dataset_text",
]
