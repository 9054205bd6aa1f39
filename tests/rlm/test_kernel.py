"""The kernel alone: defaults it applies, its limits, its scope, its errors."""

from __future__ import annotations

import pytest

from dse.rlm import (
    BlobVar,
    Chunk,
    ExtractOverChunks,
    Kernel,
    KernelError,
    ListVar,
    Load,
    MemoryBlobs,
    Preview,
    RlmKnobs,
    ScopedBlobs,
    Search,
    SubLm,
    TextVar,
    VarSpace,
    WriteVar,
)

TEXT = "".join(f"line {i:05d} alpha beta\n" for i in range(2000))  # 44,000 chars


class FakeSub:
    def __init__(self, left: int | None = None) -> None:
        self.left = left
        self.asked: list[tuple[str, str]] = []

    def remaining(self) -> int | None:
        return self.left

    async def ask(self, instruction: str, content: str) -> str:
        self.asked.append((instruction, content))
        if self.left is not None:
            self.left -= 1
        return f"note {len(self.asked)}"


async def make_kernel(
    knobs: RlmKnobs | None = None, sub: FakeSub | None = None
) -> tuple[Kernel, MemoryBlobs]:
    knobs = knobs or RlmKnobs()
    store = MemoryBlobs()
    blobs = ScopedBlobs(store)
    vars = VarSpace(knobs)
    blob_id = store.put(TEXT)
    blobs.grant(blob_id)
    vars.seed("input.doc", BlobVar(blob_id, len(TEXT)))
    return Kernel(knobs, vars, blobs, sub or FakeSub()), store


async def test_preview_without_length_shows_the_knob_default_not_one_char() -> None:
    kernel, _ = await make_kernel()
    observation = await kernel.execute(Preview(action="preview", var="input.doc"))
    assert observation["untrusted"] is True
    assert observation["offset"] == 0
    assert observation["length"] == 2000
    assert observation["text"] == TEXT[:2000]
    assert observation["truncated"] is True


async def test_search_without_options_gets_five_matches_with_200_chars_of_context() -> None:
    kernel, _ = await make_kernel()
    observation = await kernel.execute(Search(action="search", var="input.doc", query="alpha"))
    assert observation["total_matches"] == 2000
    assert len(observation["matches"]) == 5
    first = observation["matches"][0]
    assert first["snippet"] == TEXT[max(0, first["start"] - 200) : first["end"] + 200]
    assert observation["truncated"] is True


async def test_chunk_without_sizes_uses_the_chunking_knobs() -> None:
    knobs = RlmKnobs(chunk_chars=10_000, overlap_chars=1000, max_chunks=50)
    kernel, _ = await make_kernel(knobs)
    observation = await kernel.execute(Chunk(action="chunk", var="input.doc"))
    chunks = kernel.vars.get(observation["into"])
    assert isinstance(chunks, ListVar)
    assert [(s.start, s.end) for s in chunks.items] == [
        (0, 10_000),
        (9_000, 19_000),
        (18_000, 28_000),
        (27_000, 37_000),
        (36_000, 44_000),
    ]
    assert observation["truncated"] is False


async def test_huge_values_are_clamped_and_say_so() -> None:
    kernel, _ = await make_kernel(RlmKnobs(max_chunks=3))
    preview = await kernel.execute(Preview(action="preview", var="input.doc", length=10**12))
    assert preview["length"] == RlmKnobs().observation_chars
    assert preview["clamped"] == {"length": RlmKnobs().observation_chars}
    chunk = await kernel.execute(
        Chunk(action="chunk", var="input.doc", max_chunks=10**9, chunk_chars=100)
    )
    assert chunk["chunks"] == 3
    assert chunk["clamped"] == {"max_chunks": 3}
    assert chunk["truncated"] is True


async def test_extract_over_chunks_fans_out_over_the_default_chunks() -> None:
    sub = FakeSub()
    kernel, _ = await make_kernel(RlmKnobs(chunk_chars=20_000, overlap_chars=0), sub)
    observation = await kernel.execute(
        ExtractOverChunks(action="extract_over_chunks", var="input.doc", instruction="find x")
    )
    assert observation["chunks"] == 3
    assert observation["processed"] == 3
    assert [a[0] for a in sub.asked] == ["find x"] * 3
    assert await kernel.text_of(observation["into"]) == "note 1\n\nnote 2\n\nnote 3"


async def test_extract_stops_where_the_sub_budget_ends() -> None:
    sub = FakeSub(left=2)
    kernel, _ = await make_kernel(RlmKnobs(chunk_chars=10_000, overlap_chars=0), sub)
    observation = await kernel.execute(
        ExtractOverChunks(action="extract_over_chunks", var="input.doc", instruction="x")
    )
    assert observation["processed"] == 2
    assert "budget" in observation["stopped"]
    with pytest.raises(KernelError) as caught:
        await kernel.execute(SubLm(action="sub_lm", prompt="again", var="input.doc"))
    assert caught.value.code == "budget"
    assert len(sub.asked) == 2


async def test_a_blob_from_another_scope_cannot_be_loaded_by_its_id() -> None:
    kernel, store = await make_kernel()
    other_thread = store.put("another user's secret thread")
    with pytest.raises(KernelError) as caught:
        await kernel.execute(Load(action="load", blob_id=other_thread))
    assert caught.value.code == "out_of_scope"
    # A blob the prediction wrote itself is readable.
    await kernel.execute(SubLm(action="sub_lm", prompt="summarize", var="input.doc", into="s"))
    sub_var = kernel.vars.get("s")
    assert isinstance(sub_var, BlobVar)
    loaded = await kernel.execute(Load(action="load", blob_id=sub_var.blob_id, into="again"))
    assert loaded["chars"] == len("note 1")


async def test_var_space_limits_are_errors_not_crashes() -> None:
    kernel, _ = await make_kernel(RlmKnobs(max_vars=3, max_var_chars=10, max_total_var_chars=15))
    with pytest.raises(KernelError) as caught:
        await kernel.execute(WriteVar(action="write_var", name="a", value="x" * 11))
    assert caught.value.code == "var_limit"
    await kernel.execute(WriteVar(action="write_var", name="a", value="x" * 10))
    with pytest.raises(KernelError) as caught:
        await kernel.execute(WriteVar(action="write_var", name="b", value="x" * 6))
    assert "15" in caught.value.message
    await kernel.execute(WriteVar(action="write_var", name="b", value="x" * 5))
    with pytest.raises(KernelError) as caught:
        await kernel.execute(WriteVar(action="write_var", name="c", value=""))
    assert "full" in caught.value.message
    with pytest.raises(KernelError) as caught:
        await kernel.execute(WriteVar(action="write_var", name="input.doc", value="x"))
    assert caught.value.code == "read_only"
    assert kernel.vars.get("a") == TextVar("x" * 10)


@pytest.mark.parametrize(
    ("query", "code"),
    [("(unclosed", "bad_pattern"), ("(a+)+$", "bad_pattern"), ("(x)\\1", "bad_pattern")],
)
async def test_bad_and_dangerous_regexes_are_refused(query: str, code: str) -> None:
    kernel, _ = await make_kernel()
    with pytest.raises(KernelError) as caught:
        await kernel.execute(Search(action="search", var="input.doc", query=query, regex=True))
    assert caught.value.code == code


async def test_regex_search_matches_within_lines() -> None:
    kernel, _ = await make_kernel()
    observation = await kernel.execute(
        Search(action="search", var="input.doc", query=r"line 0001\d", regex=True, max_matches=3)
    )
    assert observation["total_matches"] == 10
    assert [m["start"] for m in observation["matches"]] == [
        TEXT.index("line 00010"),
        TEXT.index("line 00011"),
        TEXT.index("line 00012"),
    ]


async def test_unknown_var_names_the_known_ones() -> None:
    kernel, _ = await make_kernel()
    with pytest.raises(KernelError) as caught:
        await kernel.execute(Preview(action="preview", var="nope"))
    assert caught.value.code == "unknown_var"
    assert "input.doc" in caught.value.message
