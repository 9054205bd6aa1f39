"""An app with the rlm tests' long-context signature, for CLI tests of mining and eval."""

from __future__ import annotations

import dse
from tests.rlm._helpers import QA

app = dse.App()
app.add(QA)
