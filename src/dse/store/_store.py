"""The Store: every read and write of dse state, each one a single transaction."""

from __future__ import annotations

from dse.store._artifacts import ArtifactsMixin
from dse.store._canary import CanaryMixin
from dse.store._compile_jobs import CompileJobsMixin
from dse.store._datasets import DatasetsMixin
from dse.store._evals import EvalsMixin
from dse.store._example_reads import ExampleReadsMixin
from dse.store._feedback import FeedbackMixin
from dse.store._jobs import JobsMixin
from dse.store._lm_cache import LMCacheMixin
from dse.store._ops import OpsMixin
from dse.store._receipt_counts import ReceiptCountsMixin
from dse.store._receipts import ReceiptsMixin


class Store(
    ArtifactsMixin,
    CanaryMixin,
    DatasetsMixin,
    ExampleReadsMixin,
    ReceiptsMixin,
    ReceiptCountsMixin,
    FeedbackMixin,
    EvalsMixin,
    CompileJobsMixin,
    JobsMixin,
    OpsMixin,
    LMCacheMixin,
):
    """Persistent dse state on SQLite or PostgreSQL; safe to share between threads.

    Every public method runs in its own transaction, so a failure leaves nothing half-written.
    Open it with :meth:`open`, which also migrates the schema to the newest revision.
    """
