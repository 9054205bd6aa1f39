"""Autopilot is one app among others: nothing outside ``dse/autopilot`` imports it, and the
layers import downwards only (store and lm at the bottom, server and cli at the top)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dse"

# Each package may import only from the packages listed for it (the store caches LM requests,
# so it knows their types), and from the top-level
# modules dse.errors / dse._canonical / dse.__init__).
ALLOWED: dict[str, set[str]] = {
    "lm": set(),
    "signature": set(),
    "store": {"lm"},
    "runtime": {"lm", "signature", "store"},
    "rlm": {"lm", "signature", "store", "runtime"},
}
# Each of these may use everything the one before it may, and that one itself.
_STACK = ("rlm", "eval", "compile", "rollout", "app", "service")
for _below, _above in itertools.pairwise(_STACK):
    ALLOWED[_above] = ALLOWED[_below] | {_below}
ALLOWED["client"] = ALLOWED["service"] | {"service"}
ALLOWED["jobs"] = ALLOWED["service"] | {"service"}
ALLOWED["ops"] = ALLOWED["jobs"] | {"jobs"}
ALLOWED["interop"] = {"lm", "signature", "store", "runtime", "rollout"}
ALLOWED["longctx"] = {"lm", "signature", "store", "runtime", "eval", "rlm"}
# The one upward import: the runtime's default strategy registry builds the long-context
# strategies inside ``StrategyRegistry.default()``, after both packages have loaded.
LAZY_UPWARD = {("dse/runtime/_strategy.py", "dse.rlm")}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_the_scanner_sees_autopilot_imports_inside_autopilot() -> None:
    inside = [
        module
        for path in (SRC / "autopilot").rglob("*.py")
        for _, module in _imported_modules(path)
        if module.startswith("dse.autopilot")
    ]
    assert inside, "the scanner found no import of dse.autopilot even inside it"


def test_nothing_outside_autopilot_imports_it() -> None:
    offenders = [
        f"{path.relative_to(SRC.parent)}:{line} imports {module}"
        for path in _modules()
        if "autopilot" not in path.relative_to(SRC).parts[:1]
        for line, module in _imported_modules(path)
        if module == "dse.autopilot" or module.startswith("dse.autopilot.")
    ]
    assert offenders == []


def test_lower_layers_import_only_what_is_below_them() -> None:
    offenders = []
    for path in _modules():
        top = path.relative_to(SRC).parts[0]
        if top not in ALLOWED:
            continue
        for line, module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] != "dse" or len(parts) < 2 or parts[1] in (top, "errors", "_canonical"):
                continue
            where = str(path.relative_to(SRC.parent))
            if (where, ".".join(parts[:2])) in LAZY_UPWARD:
                continue
            if (SRC / parts[1]).is_dir() and parts[1] not in ALLOWED[top]:
                offenders.append(f"{path.relative_to(SRC.parent)}:{line} imports {module}")
    assert offenders == []
