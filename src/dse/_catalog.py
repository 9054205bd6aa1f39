"""The signatures this installation knows about, with what compile needs for each."""

from __future__ import annotations

from dataclasses import dataclass, field

from dse.autopilot import RECAP, RECAP_PROFILE, SELECT_TOOL, SELECT_TOOL_PROFILE
from dse.compile import CompileProfile
from dse.errors import RegistryError
from dse.signature import SignatureRegistry


@dataclass(frozen=True)
class Catalog:
    signatures: SignatureRegistry
    profiles: dict[str, CompileProfile] = field(default_factory=dict)

    def profile(self, signature_id: str) -> CompileProfile:
        self.signatures.get(signature_id)
        try:
            return self.profiles[signature_id]
        except KeyError:
            raise RegistryError(f"{signature_id} has no compile profile (search space)") from None


def builtin_catalog() -> Catalog:
    return Catalog(
        signatures=SignatureRegistry([SELECT_TOOL, RECAP]),
        profiles={SELECT_TOOL.id: SELECT_TOOL_PROFILE, RECAP.id: RECAP_PROFILE},
    )


def builtin_signatures() -> SignatureRegistry:
    return builtin_catalog().signatures
