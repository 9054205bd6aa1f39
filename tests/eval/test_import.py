"""Dataset import: every row validated first; a bad file writes nothing; upserts are idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID, dataset_path
from dse.eval import import_dataset, parse_dataset_file
from dse.store import MAX_EXAMPLE_ID_CHARS, Store

HINT = {"user_handle": "Sam", "agent_name": "Autopilot"}


def row(example_id: str, message: str, expected: dict[str, Any], **extra: Any) -> str:
    body = {
        "example_id": example_id,
        "input": {"message": message, "blueprint_hint": HINT},
        "expected": expected,
        **extra,
    }
    return json.dumps(body)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_reports_three_bad_rows_with_lines_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        [
            row("ok.1", "call me Sam", {"action": "tool", "tool": "user_update"}),
            '{"example_id": "broken.2", "input": {',
            json.dumps({"example_id": "missing.3", "expected": {"action": "none"}}),
            row("unknown.4", "launch it", {"action": "tool", "tool": "launch_rocket"}),
        ],
    )
    result = import_dataset(store, SELECT_TOOL, path)
    assert [(e.line, e.field) for e in result.errors] == [
        (2, ""),
        (3, "input"),
        (4, "expected.tool.tool"),
    ]
    assert "invalid JSON" in result.errors[0].message
    assert "missing" in result.errors[1].message
    assert "launch_rocket" in result.errors[2].message
    assert result.written is None
    assert store.list_examples(SELECT_TOOL_ID) == []


def test_skip_invalid_writes_only_the_good_rows(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            row("ok.1", "call me Sam", {"action": "tool", "tool": "user_update"}),
            row("bad.2", "x", {"action": "maybe"}),
        ],
    )
    result = import_dataset(store, SELECT_TOOL, path, skip_invalid=True)
    assert [e.line for e in result.errors] == [2]
    assert [e.example_id for e in store.list_examples(SELECT_TOOL_ID)] == ["ok.1"]


def test_reimporting_a_good_file_twice_leaves_one_copy(store: Store, tmp_path: Path) -> None:
    lines = [
        row("a.1", "call me Sam", {"action": "tool", "tool": "user_update"}, split="holdout"),
        row("a.2", "hello there", {"action": "none"}, tags=["intent:none"]),
    ]
    path = write(tmp_path, lines)
    first = import_dataset(store, SELECT_TOOL, path)
    second = import_dataset(store, SELECT_TOOL, path)
    assert first.written is not None and first.written.inserted == 2
    assert second.written is not None and second.written.unchanged == 2
    rows = store.list_examples(SELECT_TOOL_ID)
    assert [(r.example_id, r.split) for r in rows] == [("a.1", "holdout"), ("a.2", "train")]


def test_reimport_without_split_or_tags_keeps_them(store: Store, tmp_path: Path) -> None:
    full = row(
        "k.1", "hello", {"action": "none"}, split="holdout", tags=["keep"], meta={"note": "x"}
    )
    import_dataset(store, SELECT_TOOL, write(tmp_path, [full]))
    bare = row("k.1", "hello again", {"action": "none"})
    import_dataset(store, SELECT_TOOL, write(tmp_path, [bare]))
    (stored,) = store.list_examples(SELECT_TOOL_ID)
    assert stored.input["message"] == "hello again"
    assert stored.split == "holdout"
    assert stored.tags == ["keep"]
    assert stored.meta == {"note": "x"}


def test_duplicate_ids_unknown_fields_and_unreviewed_model_holdout_are_errors(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        [
            row("d.1", "hi", {"action": "none"}),
            row("d.1", "hi again", {"action": "none"}),
            row("d.3", "hi", {"action": "none"}, colour="red"),
            row("d.4", "hi", {"action": "none"}, split="holdout", label_source="model"),
        ],
    )
    parsed = parse_dataset_file(path, SELECT_TOOL)
    assert [(e.line, e.field) for e in parsed.errors] == [
        (2, "example_id"),
        (3, "colour"),
        (4, "split"),
    ]


def test_shipped_dataset_imports_cleanly() -> None:
    parsed = parse_dataset_file(Path(dataset_path()), SELECT_TOOL)
    assert parsed.errors == []
    assert len(parsed.rows) >= 120


def test_import_accepts_unicode_line_separators_inside_strings_and_a_bom(
    store: Store, tmp_path: Path
) -> None:
    """JSON allows U+2028, U+2029 and U+0085 raw inside strings; only ``\\n`` ends a row."""
    lines = [
        json.dumps(
            {
                "example_id": f"sep.{i}",
                "input": {"message": f"one{sep}two", "blueprint_hint": HINT},
                "expected": {"action": "none"},
            },
            ensure_ascii=False,
        )
        for i, sep in enumerate(["\u2028", "\u2029", "\u0085", "\x1c"])
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    result = import_dataset(store, SELECT_TOOL, path)
    assert result.errors == [] and result.rows_valid == 4
    stored = {e.example_id: e.input["message"] for e in store.list_examples(SELECT_TOOL_ID)}
    assert stored == {
        "sep.0": "one\u2028two",
        "sep.1": "one\u2029two",
        "sep.2": "one\u0085two",
        "sep.3": "one\x1ctwo",
    }


def test_import_reports_an_overlong_example_id_as_a_row_error_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        [
            row("ok.1", "call me Sam", {"action": "tool", "tool": "user_update"}),
            row("x" * (MAX_EXAMPLE_ID_CHARS + 1), "hi", {"action": "none"}),
            json.dumps(
                {
                    "example_id": "nan.3",
                    "input": {"message": "hi", "blueprint_hint": HINT},
                    "expected": {"action": "none"},
                    "meta": {"score": float("nan")},
                }
            ),
        ],
    )
    result = import_dataset(store, SELECT_TOOL, path)
    assert [(e.line, e.field) for e in result.errors] == [(2, "example_id"), (3, "meta")]
    assert f"over the limit of {MAX_EXAMPLE_ID_CHARS}" in result.errors[0].message
    assert "not a finite number" in result.errors[1].message
    assert result.written is None
    assert store.list_examples(SELECT_TOOL_ID) == []
