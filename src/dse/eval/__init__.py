"""Datasets and evaluation."""

from dse.eval._dataset import (
    ImportResult,
    ParsedDataset,
    RowError,
    import_dataset,
    parse_dataset_file,
)
from dse.eval._evaluate import EvalRun, ExampleResult, evaluate_exact

__all__ = [
    "EvalRun",
    "ExampleResult",
    "ImportResult",
    "ParsedDataset",
    "RowError",
    "evaluate_exact",
    "import_dataset",
    "parse_dataset_file",
]
