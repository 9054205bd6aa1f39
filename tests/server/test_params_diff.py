"""The params diff a person reads on the run and compile-report pages, without a server: the
instruction word by word, demos added and removed with their inputs and outputs, other knobs
with both values, and defaults that make an unset knob equal to its default."""

from __future__ import annotations

from dse.server._params_diff import (
    DemoEntry,
    KnobChange,
    WordRun,
    param_rows,
    params_diff,
    word_diff,
)
from dse.signature import Demo, PromptBlocks

HELLO = {"id": "d.hello", "input": {"message": "hello"}, "output": {"action": "none"}}
SAM = {"id": "d.sam", "input": {"message": "call me Sam"}, "output": {"action": "tool"}}
EXPORT = {"id": "d.export", "input": {"message": "export"}, "output": {"action": "tool"}}


def test_word_diff_keeps_shared_words_and_marks_the_rest() -> None:
    runs = word_diff("Pick the tool.  Be brief.", "Pick the right tool.  Be brief.")
    assert runs == [
        WordRun("same", "Pick the "),
        WordRun("added", "right "),
        WordRun("same", "tool.  Be brief."),
    ]
    replaced = word_diff("answer none", "answer a tool")
    assert [r.op for r in replaced] == ["same", "removed", "added"]
    assert "".join(r.text for r in replaced if r.op != "removed") == "answer a tool"
    assert "".join(r.text for r in replaced if r.op != "added") == "answer none"


def test_demos_added_and_removed_carry_their_inputs_and_outputs() -> None:
    diff = params_diff({"few_shot": [HELLO, SAM]}, {"few_shot": [SAM, EXPORT]})
    assert diff.demos_added == [DemoEntry("d.export", EXPORT["input"], EXPORT["output"])]
    assert diff.demos_removed == [DemoEntry("d.hello", HELLO["input"], HELLO["output"])]
    assert diff.demos_kept == 1
    assert not diff.instruction_changed and not diff.knobs


def test_knobs_list_every_other_difference_with_both_values() -> None:
    control = {"model": {"model_id": "small", "temperature": 0.0}, "decode": {"mode": "tolerant"}}
    candidate = {
        "model": {"model_id": "small", "temperature": 0.7},
        "decode": {"mode": "constrained", "demos_as": "chat"},
        "strategy": {"id": "ensemble.v1", "config": {}},
        "choices": {"pick": "logprob", "abstain_bias": 0.5},
    }
    knobs = {k.path: k for k in params_diff(control, candidate).knobs}
    assert knobs["model.temperature"] == KnobChange("model.temperature", "0.0", "0.7")
    assert knobs["decode.mode"] == KnobChange("decode.mode", "tolerant", "constrained")
    assert knobs["decode.demos_as"] == KnobChange("decode.demos_as", "inline", "chat")
    assert knobs["strategy.id"] == KnobChange("strategy.id", "direct.v1", "ensemble.v1")
    assert knobs["choices.pick"].control == "unset" and knobs["choices.pick"].candidate == "logprob"
    assert "model.model_id" not in knobs


def test_a_knob_set_to_its_default_is_no_change() -> None:
    diff = params_diff({}, {"decode": {"mode": "tolerant", "max_repairs": 1}, "few_shot": None})
    assert diff.identical


def test_unset_instruction_and_demos_are_the_authored_ones() -> None:
    authored = PromptBlocks(
        instruction="Route the message.",
        demos=(Demo(id="d.hello", input=HELLO["input"], output=HELLO["output"]),),
    )
    diff = params_diff(
        {}, {"instruction": "Route the message. When in doubt, answer none."}, authored
    )
    assert diff.instruction_changed
    assert [r.op for r in diff.instruction] == ["same", "added"]
    assert diff.demos_kept == 1 and not diff.demos_added
    emptied = params_diff({}, {"few_shot": []}, authored)
    assert [d.id for d in emptied.demos_removed] == ["d.hello"]


def test_a_demo_pool_is_one_knob_not_hundreds() -> None:
    pool = [HELLO, SAM]
    rows = dict(param_rows({"demo_retrieval": {"pool": pool, "k": 2}}))
    assert rows["demo_retrieval.pool"] == "2 items: d.hello, d.sam"
    assert rows["demo_retrieval.k"] == "2"
    assert rows["decode.mode"] == "tolerant" and "instruction" not in rows
