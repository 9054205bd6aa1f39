"""Import a DSPy-saved program (the JSON of ``program.save("x.json")``) as params for a matching
signature, so a team moving from DSPy keeps the instruction and the demos it compiled there.

DSPy saves each predictor's state: its signature's ``instructions`` and its ``demos``, each a flat
dict of field name to value. A ``dspy.Predict`` saves that state at the top of the file; a
``dspy.ChainOfThought`` (or any module) saves it under the predictor's name (``predict``). The
instruction becomes ``params.instruction`` and the demos become ``params.few_shot`` (stored by
content, as every dse demo is), on top of the signature's defaults. Demo fields map onto the
signature's input and output models by name; a field that matches neither needs an explicit
``--field NAME=input.PATH|output.PATH|drop``, except ChainOfThought's ``reasoning``, which is
dropped when the output model has no such field (dse's outputs carry no rationale).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dse._canonical import sha256_id
from dse._validation import validation_problems
from dse.errors import InvalidInputError
from dse.rollout import PointerMove, set_active
from dse.signature import Artifact, Demo, OptimizerInfo, Params, Signature
from dse.store import Store

OPTIMIZER_ID = "dspy_import"
# A bare dspy.Predict saves its state at the top of the file; DSPy names that parameter "self".
TOP_LEVEL = "self"
# Keys of a saved demo that are DSPy bookkeeping, not fields (bootstrapped demos carry these).
_NOT_FIELDS = frozenset({"augmented"})
_RATIONALE = "reasoning"
# DSPy's default field description is "${name}"; it is the only place a saved file names a field
# apart from the demos.
_DEFAULT_DESCRIPTION = re.compile(r"^\$\{(\w+)\}$")

Side = Literal["input", "output"]


class DspyImportError(InvalidInputError):
    """A DSPy program file cannot become params for the signature (the message names the file
    and the field)."""

    name: ClassVar[str] = "DspyImportError"


class DspyProgram(BaseModel):
    """One predictor of a DSPy program file, read and checked against a dse signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    file_sha256: str
    predictor: str
    instruction: str
    demos: tuple[Demo, ...]
    dropped_fields: tuple[str, ...]
    dspy_version: str | None
    dspy_lm: str | None


class DspyImportResult(BaseModel):
    """What an import stored: the artifact (``created`` False when the same params were stored
    before) and, with ``--activate``, the pointer move."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signature_id: str
    compiled_id: str
    created: bool
    activated: PointerMove | None
    program: DspyProgram


@dataclass(frozen=True)
class _Target:
    """Where a DSPy field goes: ``side`` None drops it."""

    side: Side | None
    path: tuple[str, ...] = ()


def parse_field_map(items: Sequence[str]) -> dict[str, str]:
    """``NAME=input.PATH``, ``NAME=output.PATH`` or ``NAME=drop`` options as a dict."""
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise DspyImportError(
                f"--field {item!r}: expected DSPY_NAME=input.PATH, DSPY_NAME=output.PATH "
                "or DSPY_NAME=drop"
            )
        mapping[name.strip()] = target.strip()
    return mapping


def read_dspy_program(
    path: Path,
    signature: Signature[Any, Any],
    *,
    predictor: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> DspyProgram:
    """Read one predictor of a DSPy program file and map its demos onto ``signature``.

    Every problem raises :class:`DspyImportError` naming the file and the field; nothing here
    writes anything.
    """
    raw = _read_bytes(path)
    document = _parse(path, raw)
    name, state = _predictor_state(path, document, predictor)
    where = "" if name == TOP_LEVEL else f"{name}."
    instruction, declared = _signature_block(path, state, where)
    targets = _targets(path, signature, fields or {})
    demos_raw = state.get("demos", [])
    if not isinstance(demos_raw, list):
        raise DspyImportError(f"{path}: {where}demos: expected a list, found {_kind(demos_raw)}")
    dropped: set[str] = set()
    for position, field in enumerate(declared):
        _resolve(path, signature, targets, field, f"{where}signature.fields[{position}]", dropped)
    demos = tuple(
        _demo(path, signature, targets, demo, f"{where}demos[{index}]", dropped)
        for index, demo in enumerate(demos_raw)
    )
    return DspyProgram(
        file=path.name,
        file_sha256="sha256:" + hashlib.sha256(raw).hexdigest(),
        predictor=name,
        instruction=instruction,
        demos=demos,
        dropped_fields=tuple(sorted(dropped)),
        dspy_version=_dspy_version(document),
        dspy_lm=_lm_model(state),
    )


def dspy_params(signature: Signature[Any, Any], program: DspyProgram, model_id: str) -> Params:
    """The signature's defaults with DSPy's instruction and fixed demos (no retrieval, which
    would show demos the DSPy program never did), pinned to ``model_id``."""
    defaults = signature.defaults
    return defaults.model_copy(
        update={
            "instruction": program.instruction,
            "few_shot": program.demos,
            "demo_retrieval": None,
            "model": defaults.model.model_copy(update={"model_id": model_id}),
        }
    )


def import_dspy_program(
    store: Store,
    signature: Signature[Any, Any],
    path: Path,
    *,
    model_id: str,
    predictor: str | None = None,
    fields: Mapping[str, str] | None = None,
    activate: bool = False,
    actor: str = "",
) -> DspyImportResult:
    """Store the program's params as an artifact of ``signature``; with ``activate``, point the
    signature at it (action ``set``). The file is read and checked in full before any write."""
    program = read_dspy_program(path, signature, predictor=predictor, fields=fields)
    artifact = Artifact.build(
        signature,
        dspy_params(signature, program, model_id),
        optimizer=OptimizerInfo(id=OPTIMIZER_ID, config={"predictor": program.predictor}),
        provenance={
            "imported_from": "dspy",
            "file": program.file,
            "file_sha256": program.file_sha256,
            "dspy_version": program.dspy_version,
            "dspy_lm": program.dspy_lm,
            "dropped_fields": list(program.dropped_fields),
        },
    )
    created = store.get_artifact(artifact.compiled_id) is None
    if created:
        store.put_artifact(artifact.compiled_id, signature.id, artifact.model_dump(mode="json"))
    move = None
    if activate:
        move = set_active(
            store,
            signature,
            artifact.compiled_id,
            actor=actor,
            reason=f"imported from DSPy program {program.file} ({program.predictor})",
        )
    return DspyImportResult(
        signature_id=signature.id,
        compiled_id=artifact.compiled_id,
        created=created,
        activated=move,
        program=program,
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DspyImportError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DspyImportError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DspyImportError(
            f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(document, dict):
        raise DspyImportError(
            f"{path}: expected a JSON object (a DSPy program's saved state), "
            f"found {_kind(document)}"
        )
    return document


def _predictor_state(
    path: Path, document: dict[str, Any], predictor: str | None
) -> tuple[str, dict[str, Any]]:
    if "signature" in document:
        states = {TOP_LEVEL: document}
    else:
        states = {
            key: value
            for key, value in document.items()
            if isinstance(value, dict) and "signature" in value
        }
    if not states:
        raise DspyImportError(
            f"{path}: no DSPy predictor state found: expected 'signature' and 'demos' at the top "
            "(as dspy.Predict saves) or under a predictor's name such as 'predict' (as "
            "dspy.ChainOfThought saves); was it written by program.save('x.json')?"
        )
    names = ", ".join(sorted(states))
    if predictor is not None:
        if predictor not in states:
            raise DspyImportError(f"{path}: no predictor {predictor!r}; the file has: {names}")
        return predictor, states[predictor]
    if len(states) > 1:
        raise DspyImportError(
            f"{path}: the program has {len(states)} predictors ({names}); a dse signature is "
            "one of them: choose it with --predictor NAME"
        )
    return next(iter(states.items()))


def _signature_block(path: Path, state: dict[str, Any], where: str) -> tuple[str, list[str]]:
    """The instruction and the field names the saved signature declares (where it says)."""
    block = state["signature"]
    if not isinstance(block, dict):
        raise DspyImportError(f"{path}: {where}signature: expected an object, found {_kind(block)}")
    instruction = block.get("instructions")
    if not isinstance(instruction, str):
        raise DspyImportError(
            f"{path}: {where}signature.instructions: expected a string, found {_kind(instruction)}"
        )
    fields = block.get("fields", [])
    if not isinstance(fields, list):
        raise DspyImportError(
            f"{path}: {where}signature.fields: expected a list, found {_kind(fields)}"
        )
    declared: list[str] = []
    for field in fields:
        description = field.get("description") if isinstance(field, dict) else None
        match = _DEFAULT_DESCRIPTION.match(description) if isinstance(description, str) else None
        if match:
            declared.append(match.group(1))
    return instruction, declared


def _targets(
    path: Path, signature: Signature[Any, Any], fields: Mapping[str, str]
) -> dict[str, _Target]:
    targets: dict[str, _Target] = {}
    for name, spec in fields.items():
        if spec == "drop":
            targets[name] = _Target(None)
            continue
        side, _, dotted = spec.partition(".")
        parts = tuple(part for part in dotted.split(".") if part)
        if side not in ("input", "output") or not parts:
            raise DspyImportError(
                f"--field {name}={spec}: expected input.PATH, output.PATH or drop"
            )
        model = signature.input_model if side == "input" else signature.output_model
        if parts[0] not in model.model_fields:
            raise DspyImportError(
                f"--field {name}={spec}: {parts[0]!r} is not a field of {signature.id}'s "
                f"{side} ({_field_list(model)})"
            )
        targets[name] = _Target("input" if side == "input" else "output", parts)
    return targets


def _resolve(
    path: Path,
    signature: Signature[Any, Any],
    targets: Mapping[str, _Target],
    field: str,
    where: str,
    dropped: set[str],
) -> _Target:
    """Explicit mapping, else the same name at the top of the input or output model."""
    target = targets.get(field)
    if target is None and field in signature.input_model.model_fields:
        target = _Target("input", (field,))
    if target is None and field in signature.output_model.model_fields:
        target = _Target("output", (field,))
    if target is None and field == _RATIONALE:
        target = _Target(None)
    if target is None:
        raise DspyImportError(
            f"{path}: {where}: DSPy field {field!r} matches no top-level field of "
            f"{signature.id} (input: {_field_list(signature.input_model)}; output: "
            f"{_field_list(signature.output_model)}); map it with --field {field}=input.PATH, "
            f"--field {field}=output.PATH or --field {field}=drop"
        )
    if target.side is None:
        dropped.add(field)
    return target


def _demo(
    path: Path,
    signature: Signature[Any, Any],
    targets: Mapping[str, _Target],
    demo: Any,
    where: str,
    dropped: set[str],
) -> Demo:
    if not isinstance(demo, dict):
        raise DspyImportError(f"{path}: {where}: expected an object, found {_kind(demo)}")
    sides: dict[Side, dict[str, Any]] = {"input": {}, "output": {}}
    for field, value in demo.items():
        if field in _NOT_FIELDS:
            continue
        target = _resolve(path, signature, targets, field, f"{where}.{field}", dropped)
        if target.side is not None:
            _place(path, sides[target.side], target, value, f"{where}.{field}")
    input_ = _validated(path, signature.input_model, sides["input"], f"{where} input")
    output = _validated(path, signature.output_model, sides["output"], f"{where} output")
    # The id comes from the content, so the same demo has the same id in every import.
    digest = sha256_id({"input": input_, "output": output}).removeprefix("sha256:")
    return Demo(id=f"dspy:{digest[:16]}", input=input_, output=output)


def _place(path: Path, side: dict[str, Any], target: _Target, value: Any, where: str) -> None:
    node = side
    for part in target.path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise DspyImportError(
                f"{path}: {where}: {'.'.join(target.path)} crosses a value another field set"
            )
        node = child
    leaf = target.path[-1]
    if leaf in node:
        raise DspyImportError(
            f"{path}: {where}: {target.side}.{'.'.join(target.path)} is set by two DSPy fields"
        )
    node[leaf] = value


def _validated(path: Path, model: type[BaseModel], value: dict[str, Any], where: str) -> Any:
    try:
        parsed = model.model_validate(value)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise DspyImportError(f"{path}: {where} does not match the signature: {problems}") from None
    return parsed.model_dump(mode="json", exclude_unset=True)


def _dspy_version(document: dict[str, Any]) -> str | None:
    metadata = document.get("metadata")
    versions = metadata.get("dependency_versions") if isinstance(metadata, dict) else None
    found = versions.get("dspy") if isinstance(versions, dict) else None
    return found if isinstance(found, str) else None


def _lm_model(state: dict[str, Any]) -> str | None:
    lm = state.get("lm")
    model = lm.get("model") if isinstance(lm, dict) else None
    return model if isinstance(model, str) else None


def _field_list(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields) or "(none)"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
