"""lm_from_spec: the accepted forms and the errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.errors import LMError, ModelPackError
from dse.lm import LocalLM, lm_from_spec


@pytest.mark.parametrize("spec", ["", "qwen", "local:", "bogus:thing", "openai"])
def test_bad_specs_list_the_accepted_forms(spec: str) -> None:
    with pytest.raises(LMError) as info:
        lm_from_spec(spec)
    message = str(info.value)
    for form in ("local:NAME", "gguf:PATH", "openai:MODEL", "scripted:FILE"):
        assert form in message


def test_local_pack_must_be_installed(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="dse models install smollm2-135m"):
        lm_from_spec("local:smollm2-135m", models_dir=tmp_path)


def test_local_unknown_pack(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="known packs"):
        lm_from_spec("local:gpt-5", models_dir=tmp_path)


def test_gguf_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(LMError, match="not found"):
        lm_from_spec(f"gguf:{tmp_path / 'nope.gguf'}")


def test_gguf_model_id_is_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    lm = lm_from_spec(f"gguf:{path}", timeout_s=7)
    assert isinstance(lm, LocalLM)
    assert lm.default_model_id == "gguf:tiny.gguf"
    assert lm.timeout_s == 7
