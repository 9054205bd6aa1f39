"""The compile report page says how the search went: why it stopped, which teacher wrote the
proposals (the report's teacher model id), and the notes the search left on skipped steps."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

from fastapi.testclient import TestClient

from dse.compile import compile_signature
from dse.lm import LMRequest, ScriptedLM
from dse.store import Store
from tests.compile.test_default_space import PROPOSAL, REVIEW, starter_set
from tests.compile.test_reflect import profile, task_lm

from ._data import VIEWER, app_for


def test_the_page_names_the_teacher_the_stop_reason_and_the_notes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dse.db"
    store = Store.open(url)
    try:
        starter_set(store)
        task, _ = task_lm("task-0.5b")

        def teach(request: LMRequest) -> str:
            return f"```\n{PROPOSAL}\n```"

        teacher = ScriptedLM(teach, model_id="teacher-1.5b", strict_model=True)
        racing = dataclasses.replace(profile(), optimizer="race")
        outcome = asyncio.run(compile_signature(store, REVIEW, task, racing, teacher=teacher))
        [row] = store.list_compile_reports(signature_id=REVIEW.id)
    finally:
        store.close()
    report = outcome.report
    assert report.stop_reason is not None
    # The scripted task model cannot score continuations, so logprob choices were not offered.
    assert report.notes == [
        "choices: the LM cannot score continuations; only grammar picking is offered"
    ]

    with TestClient(app_for(url)) as client:
        html = client.get(
            f"/dse/compile-reports/{row.id}", headers={"authorization": f"Bearer {VIEWER}"}
        ).text
    section = html.split("How the search went", 1)[1].split("<h2>", 1)[0]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section))
    assert "teacher teacher-1.5b" in text
    assert f"stopped {report.stop_reason.code}" in text
    assert "call(s) to the teacher teacher-1.5b" in text
    assert f"note {report.notes[0]}" in text
