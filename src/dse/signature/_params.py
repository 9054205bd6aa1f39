"""Params: everything compile may change about how a signature runs. Hashed into ``compiled_id``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelRole = Literal["main", "sub", "repair", "judge"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Demo(_Frozen):
    """One few-shot example, stored by content so an artifact never depends on a mutable row."""

    id: str
    input: dict[str, Any]
    output: dict[str, Any]


class DemoRetrieval(_Frozen):
    """Demos chosen per input: the ``k`` pool demos nearest the input, shown after the fixed
    ``few_shot`` demos and rendered like them.

    The pool is stored by content so the artifact is self-contained and hashed. ``bm25`` ranks
    the pool by BM25 over the string leaves of each demo's input (only the top-level
    ``query_fields`` when given); ties keep pool order, and an input that matches fewer than
    ``k`` demos is topped up from the pool (one demo per output value first). A pool demo whose
    input equals the input is never shown to it. ``max_chars`` bounds the prompt the demos
    take: the chosen demos are shown in rank order while their inputs and outputs, as compact
    JSON, add up to at most this many characters (the first is always shown).
    """

    pool: tuple[Demo, ...] = Field(min_length=1)
    k: int = Field(default=3, ge=1, le=32)
    method: Literal["bm25"] = "bm25"
    query_fields: tuple[str, ...] | None = None
    max_chars: int | None = Field(default=None, ge=1, exclude_if=lambda v: v is None)


class NeighborVote(_Frozen):
    """The answers of the ``k`` train rows nearest the input, as evidence for a logprob pick.

    The nearest rows are ranked as :class:`DemoRetrieval` ranks demos (BM25 over the input's
    string leaves; only rows that share a word; never a row whose input equals the input), and
    each casts one vote: for its own answer when this input allows it, else spread over the
    allowed answers other than the abstention (it says "answer", not which). Each allowed
    output's log vote share (half a vote added to every output) times ``weight`` is added to
    its score: what labeled inputs like this one were answered, where a small model's own
    scores say little.
    """

    pool: tuple[Demo, ...] = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=64)
    weight: float = Field(default=1.0, ge=0.0)
    query_fields: tuple[str, ...] | None = None


class DecodeParams(_Frozen):
    """How model text becomes an output model.

    ``strict`` parses the whole text as JSON; ``tolerant`` takes the first balanced object;
    ``constrained`` asks the backend to enforce the output schema (falls back to tolerant parsing of
    what comes back). ``demos_as`` renders few-shot demos inline as JSON or as prior chat turns.
    """

    mode: Literal["strict", "tolerant", "constrained"] = "tolerant"
    max_repairs: int = Field(default=1, ge=0, le=5)
    demos_as: Literal["inline", "chat"] = "inline"


class RoleOverride(_Frozen):
    model_id: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


class ModelParams(_Frozen):
    """Model choice; ``model_id`` is filled from the LM backend when the defaults omit it."""

    model_id: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = None
    max_tokens: int = Field(default=256, ge=1)
    roles: dict[ModelRole, RoleOverride] = Field(default_factory=dict)


class StrategyParams(_Frozen):
    id: str = "direct.v1"
    config: dict[str, Any] = Field(default_factory=dict)


class Budgets(_Frozen):
    """Per-prediction limits; a limit of N allows exactly N. ``None`` means unlimited."""

    max_time_ms: int | None = Field(default=None, ge=0)
    max_lm_calls: int | None = Field(default=None, ge=0)
    max_sub_lm_calls: int | None = Field(default=None, ge=0)
    max_iterations: int | None = Field(default=None, ge=0)
    max_output_chars: int | None = Field(default=None, ge=0)


class EnsembleParams(_Frozen):
    """Self-consistency: ``samples`` answers drawn at ``temperature`` (sample_index 0..k-1), the
    majority output wins (ties go to the answer seen first). Each sample is an LM call that
    budgets, receipts and evaluations count."""

    samples: int = Field(ge=2, le=16)
    temperature: float = Field(gt=0.0, le=2.0)


class ChoiceParams(_Frozen):
    """Outputs limited to a set each input defines, and how one of them is picked.

    ``source="schema"``: every output the (finite, small) output schema allows, up to
    ``max_outputs``. ``source="input"``: outputs whose string field at ``output_field`` (a JSON
    pointer such as ``"/tool"``) is a value the input names at ``input_path`` (``"tools[*].name"``,
    or ``"tools[*]"`` for a list of strings); ``template`` is the rest of such an output (``None``:
    the output holds only that field). ``abstain`` is an output that is always allowed.
    ``pick="grammar"`` generates under a schema narrowed to the allowed values; ``"logprob"``
    scores every allowed output under the model and takes the argmax, ``abstain_bias`` added to
    the abstention's log-probability (compile tunes it: how a small model learns to say "none").
    ``blank_weight`` (logprob only) also scores the outputs after the same prompt with the
    input's own text blanked (every string emptied but the list the choices come from) and
    subtracts that score times the weight: what this input says for each output rather than how
    likely the model finds it anyway (a short or familiar name, "none" after any text). One
    more LM call a prediction; compile tunes the weight with the bias. ``neighbors``
    (logprob only, :class:`NeighborVote`) adds the votes of the nearest labeled rows; no LM call.
    ``menu_match`` (logprob, choices from a list of objects such as ``tools[*].name``) adds that
    weight times the share of the input's own words (its text outside the list) that each
    listed item repeats in its name, description or parameters: how plainly the request asks
    for that item, a lexical cue a small model's scores miss when nothing listed fits; no LM
    call.
    """

    source: Literal["schema", "input"] = "schema"
    output_field: str | None = None
    input_path: str | None = None
    template: dict[str, Any] | None = None
    abstain: dict[str, Any] | None = None
    pick: Literal["grammar", "logprob"] = "grammar"
    abstain_bias: float = 0.0
    blank_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    neighbors: NeighborVote | None = Field(default=None, exclude_if=lambda v: v is None)
    menu_match: float | None = Field(default=None, ge=0.0, exclude_if=lambda v: v is None)
    max_outputs: int = Field(default=64, ge=1, le=1024)

    @model_validator(mode="after")
    def _input_source_names_both_ends(self) -> ChoiceParams:
        if self.source == "input" and (self.output_field is None or self.input_path is None):
            raise ValueError("choices from the input need output_field and input_path")
        if self.blank_weight is not None and self.pick != "logprob":
            raise ValueError("blank_weight needs pick='logprob': it adjusts the scores")
        if self.neighbors is not None and self.pick != "logprob":
            raise ValueError("neighbors needs pick='logprob': its votes adjust the scores")
        if self.menu_match is not None and (
            self.pick != "logprob"
            or self.source != "input"
            or "[*]." not in (self.input_path or "")
        ):
            raise ValueError(
                "menu_match needs pick='logprob' and choices from a list of objects in the input "
                "(input_path like 'tools[*].name'): it compares the input with each listed item"
            )
        if self.output_field is not None and not self.output_field.startswith("/"):
            raise ValueError(
                f"output_field must be a JSON pointer like '/tool', got {self.output_field!r}"
            )
        return self

    @property
    def menu_path(self) -> str:
        """The list input-defined choices come from: ``input_path`` up to its last ``[*]``
        (``functions`` for ``functions[*].function.name``); ``""`` when they come from no list."""
        path = self.input_path or ""
        if self.source != "input" or "[*]" not in path:
            return ""
        return path[: path.rindex("[*]")]


class Params(_Frozen):
    """The full, versioned policy of one signature. ``few_shot=None`` uses the authored demos."""

    params_version: Literal[1] = 1
    instruction: str | None = None
    few_shot: tuple[Demo, ...] | None = None
    demo_retrieval: DemoRetrieval | None = None
    decode: DecodeParams = DecodeParams()
    model: ModelParams = ModelParams()
    strategy: StrategyParams = StrategyParams()
    rlm_lite: dict[str, Any] | None = None
    budgets: Budgets = Budgets()
    ensemble: EnsembleParams | None = None
    choices: ChoiceParams | None = None

    def canonical(self) -> dict[str, Any]:
        """The JSON form that is hashed: defaults included, ``None`` fields dropped."""
        return self.model_dump(mode="json", exclude_none=True)

    def with_model_id(self, model_id: str) -> Params:
        """Pin the model when the params leave it open."""
        if self.model.model_id is not None:
            return self
        return self.model_copy(
            update={"model": self.model.model_copy(update={"model_id": model_id})}
        )

    def role_model(self, role: ModelRole) -> ModelParams:
        """Model settings for a role: the base ``model`` with the role's fields overlaid."""
        override = self.model.roles.get(role)
        if override is None:
            return self.model
        patch = {k: v for k, v in override.model_dump().items() if v is not None}
        return self.model.model_copy(update=patch)
