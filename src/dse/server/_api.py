"""The JSON API under ``/api/dse``: every CLI operation, with declared request/response models.

Signature ids contain slashes (``autopilot/blueprint/SelectTool.v1``); they travel as one path
parameter (``{signature_id:path}``), raw or percent-encoded. Routes with a suffix after the id
are registered before the bare ``/signatures/{signature_id}`` so the suffix is never swallowed.

Auth happens before any of this (``_auth``): reads need the viewer or admin token, everything
else under ``/api/dse`` needs admin. Long work (compile, eval, exercise) runs in background
tasks of this process and is polled; no request stays open for minutes.
"""

from __future__ import annotations

from dse import service
from dse.server import (  # noqa: F401  (each module registers its routes on the router)
    _api_compile,
    _api_ops,
    _api_receipts,
    _api_rollout,
    _api_signatures,
)
from dse.server._api_base import PREFIX, Ctx, SignatureId, router, signature_for
from dse.server._api_models import SignatureOut

__all__ = ["PREFIX", "router"]


# Registered here, after every area's routes: a route with a suffix after the id must come
# first, or this bare one would swallow the suffix.
@router.get(
    "/signatures/{signature_id:path}",
    response_model=SignatureOut,
    summary="One signature with its active id and dataset size",
)
def get_signature(ctx: Ctx, signature_id: SignatureId) -> SignatureOut:
    signature = signature_for(ctx, signature_id)
    counts = service.split_counts(ctx.store, signature.id)
    canary = ctx.store.get_canary(signature.id)
    return SignatureOut(
        signature_id=signature.id,
        description=signature.description,
        active=ctx.store.get_active(signature.id),
        canary_enabled=bool(canary and canary.enabled),
        examples=counts,
    )
