"""Signatures: typed input/output models, authored prompt blocks and default params, as data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from dse._canonical import sha256_id
from dse.errors import NotFoundError, RegistryError
from dse.signature._params import Demo, Params

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)


class ContextEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    value: Any


class PromptBlocks(BaseModel):
    """The authored prompt; hashed as-is into ``prompt_hash`` (params apply at render time)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str = ""
    instruction: str = ""
    demos: tuple[Demo, ...] = ()
    output_format: Literal["json_schema", "json_only"] = "json_schema"
    context: tuple[ContextEntry, ...] = ()


class ContractHashes(BaseModel):
    """What an artifact was compiled against; Predict refuses an artifact whose hashes differ."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_schema_hash: str
    output_schema_hash: str
    prompt_hash: str


@dataclass(frozen=True)
class Signature(Generic[InputT, OutputT]):
    """One LM decision: ``id`` like ``autopilot/blueprint/SelectTool.v1``."""

    id: str
    input_model: type[InputT]
    output_model: type[OutputT]
    prompt: PromptBlocks
    defaults: Params = field(default_factory=Params)
    description: str = ""

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    @cached_property
    def output_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()

    @cached_property
    def contract_hashes(self) -> ContractHashes:
        return ContractHashes(
            input_schema_hash=sha256_id(self.input_schema),
            output_schema_hash=sha256_id(self.output_schema),
            prompt_hash=sha256_id(self.prompt.model_dump(mode="json")),
        )

    def compiled_id(self, params: Params) -> str:
        """``H(signature id, contract hashes, params)``; params must already pin the model id."""
        return compiled_id_for(self.id, self.contract_hashes, params)


def compiled_id_for(signature_id: str, hashes: ContractHashes, params: Params) -> str:
    if params.model.model_id is None:
        raise RegistryError(
            f"params for {signature_id} do not pin a model id; a compiled_id must name its model"
        )
    return sha256_id(
        {
            "signature_id": signature_id,
            "input_schema_hash": hashes.input_schema_hash,
            "output_schema_hash": hashes.output_schema_hash,
            "prompt_hash": hashes.prompt_hash,
            "params": params.canonical(),
        }
    )


class SignatureRegistry:
    """Signatures known to this process, by id."""

    def __init__(self, signatures: Iterable[Signature[Any, Any]] = ()) -> None:
        self._by_id: dict[str, Signature[Any, Any]] = {}
        for signature in signatures:
            self.register(signature)

    def register(self, signature: Signature[Any, Any]) -> None:
        existing = self._by_id.get(signature.id)
        if existing is not None and existing is not signature:
            raise RegistryError(f"signature {signature.id} is already registered")
        self._by_id[signature.id] = signature

    def get(self, signature_id: str) -> Signature[Any, Any]:
        try:
            return self._by_id[signature_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "(none)"
            raise NotFoundError(
                f"unknown signature {signature_id!r}; registered: {known}"
            ) from None

    def all(self) -> list[Signature[Any, Any]]:
        return [self._by_id[k] for k in sorted(self._by_id)]
