"""Kernel errors: never raised out of the loop, they become error observations."""

from __future__ import annotations

from typing import Literal

KernelErrorCode = Literal[
    "unknown_var",
    "wrong_kind",
    "bad_name",
    "read_only",
    "var_limit",
    "out_of_scope",
    "missing_blob",
    "bad_pattern",
    "bad_range",
    "budget",
    "invalid_action",
    "invalid_final",
]


class KernelError(Exception):
    """Something the controller asked for could not be done; shown back to it as data."""

    def __init__(self, code: KernelErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: KernelErrorCode = code
        self.message = message
