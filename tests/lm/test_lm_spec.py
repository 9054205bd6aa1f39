"""lm_from_spec: the accepted forms and the errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.errors import LMError, ModelPackError
from dse.lm import LocalLM, OpenAILM, lm_from_spec
from dse.lm._local import LOCAL_TIMEOUT_S
from dse.lm._openai import CONTEXT_TOKENS_ENV, OPENAI_TIMEOUT_S


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


def test_each_backend_keeps_its_own_timeout_unless_one_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long sub-LM prompt on the local 0.5B model took over 60 s on two cores in a real compile;
    # the local default is longer than a remote endpoint's.
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    local = lm_from_spec(f"gguf:{path}")
    assert isinstance(local, LocalLM) and local.timeout_s == LOCAL_TIMEOUT_S == 120.0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    remote = lm_from_spec("openai:gpt-test")
    assert isinstance(remote, OpenAILM) and remote.timeout_s == OPENAI_TIMEOUT_S == 60.0


def test_an_openai_spec_takes_the_endpoint_window_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.delenv(CONTEXT_TOKENS_ENV, raising=False)
    assert lm_from_spec("openai:m").context_tokens is None

    monkeypatch.setenv(CONTEXT_TOKENS_ENV, " 8192 ")
    assert lm_from_spec("openai:m").context_tokens == 8192
    assert OpenAILM("m", context_tokens=2048).context_tokens == 2048

    for bad in ("8k", "0", "-5"):
        monkeypatch.setenv(CONTEXT_TOKENS_ENV, bad)
        with pytest.raises(LMError, match=f"{CONTEXT_TOKENS_ENV} must be a whole number.*{bad}"):
            lm_from_spec("openai:m")
    with pytest.raises(LMError, match="context_tokens must be"):
        OpenAILM("m", context_tokens=0)
