"""A receipt count whose cost is bounded, for pages that show how many receipts there are.

``count_receipts`` reads every index entry of the signature: about 40 ms at 300k receipts and
growing with them, on every view of the overview and the signature page. A page needs the exact
number only while it is small; past a cap it says "10,000+", and counting stops at the cap.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse.errors import StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase


class ReceiptCountsMixin(_StoreBase):
    """Receipts counted up to a limit."""

    def count_receipts_up_to(self, limit: int, signature_id: str | None = None) -> int:
        """The number of receipts (of one signature, else all), or ``limit`` if there are more."""
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        rows = sa.select(sa.literal(1)).select_from(m.Receipt)
        if signature_id is not None:
            rows = rows.where(m.Receipt.signature_id == signature_id)
        query = sa.select(sa.func.count()).select_from(rows.limit(limit).subquery())

        def run(session: Session) -> int:
            return int(session.scalar(query) or 0)

        return self._transact("count_receipts_up_to", run)
