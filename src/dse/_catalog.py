"""The signatures this installation knows about."""

from __future__ import annotations

from dse.autopilot import SELECT_TOOL
from dse.signature import SignatureRegistry


def builtin_signatures() -> SignatureRegistry:
    return SignatureRegistry([SELECT_TOOL])
