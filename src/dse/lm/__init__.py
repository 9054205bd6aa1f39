"""The LM layer: one async protocol, four backends, a cache wrapper and local model packs."""

from dse.lm._cache import CachedLM, InMemoryLMCache
from dse.lm._local import LocalLM
from dse.lm._openai import OpenAILM
from dse.lm._packs import (
    PACKS,
    ModelPack,
    PackInfo,
    PackPart,
    ProgressFn,
    default_models_dir,
    file_sha256,
    get_pack,
    install_pack,
    list_packs,
    pack_path,
    verify_file,
)
from dse.lm._scripted import ScriptedLM, last_user_message
from dse.lm._spec import SPEC_FORMS, lm_from_spec
from dse.lm._types import LM, Completion, LMCache, LMRequest, Message, ModelConfig, Usage
from dse.lm._wrapped import WrappedLM

__all__ = [
    "LM",
    "PACKS",
    "SPEC_FORMS",
    "CachedLM",
    "Completion",
    "InMemoryLMCache",
    "LMCache",
    "LMRequest",
    "LocalLM",
    "Message",
    "ModelConfig",
    "ModelPack",
    "OpenAILM",
    "PackInfo",
    "PackPart",
    "ProgressFn",
    "ScriptedLM",
    "Usage",
    "WrappedLM",
    "default_models_dir",
    "file_sha256",
    "get_pack",
    "install_pack",
    "last_user_message",
    "list_packs",
    "lm_from_spec",
    "pack_path",
    "verify_file",
]
