"""Signatures the interop tests import DSPy programs into and export receipts of.

``ROUTE`` has the DSPy fixture's fields at the top of its models; ``NESTED_ROUTE`` keeps the
message inside a nested model, so a DSPy ``message`` field needs an explicit mapping.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

import dse

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PREDICT_FILE = FIXTURES / "dspy_route_predict.json"
COT_FILE = FIXTURES / "dspy_route_cot.json"


class RouteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str
    tools: list[str]


class RouteOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str


class NestedInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: Request
    tools: list[str]


ROUTE = dse.Signature(
    id="interop/Route.v1",
    input_model=RouteInput,
    output_model=RouteOutput,
    prompt=dse.PromptBlocks(instruction="Pick a tool."),
)
NESTED_ROUTE = dse.Signature(
    id="interop/NestedRoute.v1",
    input_model=NestedInput,
    output_model=RouteOutput,
    prompt=dse.PromptBlocks(instruction="Pick a tool."),
)

app = dse.App("interop-tests")
app.add(ROUTE)
app.add(NESTED_ROUTE)
