"""Typed errors. Receipts record failures by ``name``, so they can be counted and filtered."""

from __future__ import annotations

from typing import Any, ClassVar


class DseError(Exception):
    """Base of every dse error; ``name`` is stable and recorded in receipts."""

    name: ClassVar[str] = "DseError"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class RenderError(DseError):
    """The prompt could not be rendered (unknown few-shot id, bad input)."""

    name = "RenderError"


class LMError(DseError):
    """The LM call failed after retries, timed out, or the backend is misconfigured."""

    name = "LMError"


class DecodeError(DseError):
    """The model's text did not decode into the signature's output model."""

    name = "DecodeError"


class BudgetExceededError(DseError):
    """A budget limit was exceeded; ``details`` carry budget, limit and observed."""

    name = "BudgetExceededError"


class RegistryError(DseError):
    """The active pointer, canary or artifact could not be resolved or is inconsistent."""

    name = "RegistryError"


class NotFoundError(RegistryError):
    """Something named by id (signature, artifact, receipt) does not exist here."""

    name = "NotFoundError"


class ConflictError(DseError):
    """The request contradicts what is already recorded (e.g. different feedback, same source)."""

    name = "ConflictError"


class InvalidInputError(DseError):
    """A value given by the caller is not acceptable (named in the message)."""

    name = "InvalidInputError"


class ContractMismatchError(RegistryError):
    """An artifact was compiled against a different contract than the running signature."""

    name = "ContractMismatchError"


class StrategyError(DseError):
    """Unknown strategy or a strategy-level failure."""

    name = "StrategyError"


class DatasetError(DseError):
    """A dataset could not be imported or snapshotted."""

    name = "DatasetError"


class StoreError(DseError):
    """The store could not be opened, migrated or written."""

    name = "StoreError"


class StoreInputError(StoreError, InvalidInputError):
    """The store refused a value the caller gave (e.g. a number JSON cannot hold).

    Still a StoreError for code that handles store failures, but an InvalidInputError too, so
    the API answers 422 (the caller's mistake), not 503 (an unavailable store).
    """

    name = "StoreInputError"


class StoreConflictError(StoreError, ConflictError):
    """The store refused a change that contradicts what it holds (a run already running, a
    final record changed): the API answers 409."""

    name = "StoreConflictError"


class ModelPackError(DseError):
    """A local model pack could not be installed or failed verification."""

    name = "ModelPackError"
