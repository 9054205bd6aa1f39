"""Receipts: one self-describing record per prediction, ok or error."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ReceiptModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    requested: str | None = Field(description="model id the params pinned")
    used: list[str] = Field(description="model ids the backend reported actually serving the calls")
    temperature: float
    max_tokens: int


class ReceiptUsage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ReceiptResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["ok", "error"]
    error_name: str | None = None
    message: str | None = None


class Receipt(BaseModel):
    """Which policy served a prediction, what it cost and how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["dse.receipt"] = "dse.receipt"
    format_version: Literal[1] = 1
    receipt_id: str
    created_at: datetime
    signature_id: str
    compiled_id: str
    source: Literal["canary", "active", "defaults"]
    arm: Literal["control", "candidate"] | None = None
    thread_key: str | None = None
    strategy_id: str
    hashes: dict[str, str]
    model: ReceiptModel
    usage: ReceiptUsage
    duration_ms: float
    budget: dict[str, Any]
    repairs: int = 0
    input: dict[str, Any]
    output: dict[str, Any] | None = None
    result: ReceiptResult
    reward: float | None = Field(
        default=None,
        description="Reward when the request carried a known label (the exerciser's rows).",
    )
    trace_blob_id: str | None = None
