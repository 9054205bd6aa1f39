"""A tiny app for the loader and CLI tests: one signature, no search space, no reward."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

import dse


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class Mood(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mood: Literal["happy", "sad"]


MOOD = dse.Signature(
    id="tiny/Mood.v1",
    input_model=Text,
    output_model=Mood,
    prompt=dse.PromptBlocks(instruction='Is the writer happy or sad? Answer {"mood": "..."}.'),
)

app = dse.App("tiny")
app.add(MOOD, dataset="rows.jsonl")
not_an_app = "just a string"
