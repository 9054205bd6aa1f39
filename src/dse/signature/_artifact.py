"""Artifacts: immutable, content-addressed records of one compiled policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dse.errors import ContractMismatchError
from dse.signature._params import Params
from dse.signature._signature import ContractHashes, Signature, compiled_id_for


class OptimizerInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    config: dict[str, Any] = Field(default_factory=dict)


class Artifact(BaseModel):
    """Everything needed to run, inspect and reproduce a policy without the code that made it.

    The JSON schemas are stored as data so the artifact can be read on its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["dse.artifact"] = "dse.artifact"
    format_version: Literal[1] = 1
    signature_id: str
    compiled_id: str
    created_at: datetime
    hashes: ContractHashes
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    params: Params
    eval: dict[str, Any] | None = None
    optimizer: OptimizerInfo
    provenance: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def build(
        cls,
        signature: Signature[Any, Any],
        params: Params,
        *,
        optimizer: OptimizerInfo,
        eval_summary: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> Artifact:
        return cls(
            signature_id=signature.id,
            compiled_id=signature.compiled_id(params),
            created_at=created_at or datetime.now(UTC),
            hashes=signature.contract_hashes,
            input_schema=signature.input_schema,
            output_schema=signature.output_schema,
            params=params,
            eval=eval_summary,
            optimizer=optimizer,
            provenance=provenance or {},
        )

    def verify_against(self, signature: Signature[Any, Any]) -> None:
        """Refuse to run on a contract other than the one this artifact was compiled for."""
        if self.signature_id != signature.id:
            raise ContractMismatchError(
                f"artifact {self.compiled_id} belongs to signature {self.signature_id}, "
                f"not {signature.id}"
            )
        running = signature.contract_hashes
        for name in ("input_schema_hash", "output_schema_hash", "prompt_hash"):
            stored, current = getattr(self.hashes, name), getattr(running, name)
            if stored != current:
                raise ContractMismatchError(
                    f"artifact {self.compiled_id} was compiled for a different contract of "
                    f"{signature.id}: {name} is {stored} in the artifact but {current} in the "
                    f"running signature; recompile it",
                    field=name,
                    artifact_hash=stored,
                    running_hash=current,
                )
        expected_id = compiled_id_for(self.signature_id, self.hashes, self.params)
        if expected_id != self.compiled_id:
            raise ContractMismatchError(
                f"artifact {self.compiled_id} does not hash to its id (recomputed {expected_id}); "
                "it was altered after it was compiled"
            )
