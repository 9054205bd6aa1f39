"""An app: the user's signatures with what compile, the gate and the canary need for each.

A team writes ``app = dse.App("support")`` in its own code and ``app.add(...)`` each signature;
dse loads it by ``module:attr`` (see :mod:`dse.app._load`). Autopilot is one such app.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dse.app._webhook import Webhook, WebhookFormat
from dse.compile import (
    DEFAULT_BUDGET,
    DEFAULT_OPTIMIZER,
    OPTIMIZERS,
    CompileBudget,
    CompileProfile,
    RewardFactory,
    SearchSpace,
    default_space,
)
from dse.errors import RegistryError
from dse.eval import JudgeFactory, LabelFn, RewardBundle, exact_match_reward
from dse.signature import Signature, SignatureRegistry

if TYPE_CHECKING:
    from fastapi import APIRouter

RouterFactory = Callable[[], "APIRouter"]


@dataclass(frozen=True)
class Registration:
    """One signature of an app and what the loop needs for it."""

    signature: Signature[Any, Any]
    profile: CompileProfile
    dataset: Path | None = None
    judge: JudgeFactory | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What a browser probe saw: the artifact that served its request, and where its receipt is."""

    compiled_id: str
    arm: str | None
    receipt_href: str
    checks: tuple[str, ...] = ()


class BrowserProbe(Protocol):
    """Drives one request of a signature in a real browser page, in ``thread_key``'s conversation
    (so the canary routes it to a known arm); ``token`` may call the API."""

    async def __call__(
        self, page: Any, base_url: str, *, signature_id: str, thread_key: str, token: str
    ) -> ProbeResult: ...


@dataclass(frozen=True)
class WebLink:
    """A link the app adds to the pages' navigation (e.g. its own chat page)."""

    label: str
    href: str


class App:
    """The signatures one agent exposes to dse, registered in the user's own code."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.signatures = SignatureRegistry()
        self.routers: list[RouterFactory] = []
        self.nav: list[WebLink] = []
        self.template_dirs: list[Path] = []
        self.browser_probes: dict[str, BrowserProbe] = {}
        self.webhooks: list[Webhook] = []
        self._entries: dict[str, Registration] = {}

    def __repr__(self) -> str:
        return f"App({self.name!r}, signatures={[s.id for s in self.signatures.all()]})"

    def add(
        self,
        signature: Signature[Any, Any],
        *,
        space: SearchSpace | None = None,
        reward: RewardBundle | RewardFactory | None = None,
        budget: CompileBudget | None = None,
        optimizer: str | None = None,
        dataset: str | Path | None = None,
        judge: JudgeFactory | None = None,
        label_of: LabelFn | None = None,
    ) -> Signature[Any, Any]:
        """Register ``signature``; what is left out gets a generic default (search space,
        exact-match reward, a budget sized for a starter set, the race optimizer). ``reward`` is a
        :class:`~dse.eval.RewardBundle` or a factory ``(store, lm) -> RewardBundle``.

        A relative ``dataset`` path is read from the folder of the module that calls ``add``.
        ``label_of(output) -> str`` names the value an output stands for, where the per-value
        holdout breakdown should not read it from the signature's output fields.
        """
        if not isinstance(signature, Signature):
            raise RegistryError(f"App.add expects a dse.Signature, got {type(signature).__name__}")
        if optimizer is not None and optimizer not in OPTIMIZERS:
            known = ", ".join(sorted(OPTIMIZERS))
            raise RegistryError(
                f"unknown optimizer {optimizer!r} for {signature.id}; known: {known}"
            )
        self.signatures.register(signature)
        profile = CompileProfile(
            space=space if space is not None else default_space(signature),
            reward=_reward_factory(reward),
            budget=budget if budget is not None else DEFAULT_BUDGET,
            optimizer=optimizer or DEFAULT_OPTIMIZER,
            label_of=label_of,
        )
        self._entries[signature.id] = Registration(
            signature=signature,
            profile=profile,
            dataset=None if dataset is None else _resolve(Path(dataset), _caller_dir()),
            judge=judge,
        )
        return signature

    def add_router(self, factory: RouterFactory, *, nav: WebLink | None = None) -> None:
        """Serve extra routes (an app's own pages, e.g. a chat) beside the dse pages; built
        lazily so loading an app for the CLI does not import the web stack."""
        self.routers.append(factory)
        if nav is not None:
            self.nav.append(nav)

    def add_browser_probe(self, signature_id: str, probe: BrowserProbe) -> None:
        """How ``dse overnight --e2e`` reaches this signature the way users do (e.g. a chat
        page); without one, the check predicts through the API and opens the receipt page."""
        self.signatures.get(signature_id)
        self.browser_probes[signature_id] = probe

    def add_webhook(
        self, url: str, *, format: WebhookFormat = "generic", secret: str | None = None
    ) -> Webhook:
        """POST to ``url`` when an ops run of this app finishes (besides ``DSE_WEBHOOK_URL``);
        ``format`` is ``slack`` (an incoming-webhook body) or ``generic`` (the run as JSON)."""
        webhook = Webhook.model_validate({"url": url, "format": format, "secret": secret})
        self.webhooks.append(webhook)
        return webhook

    def registration(self, signature_id: str) -> Registration:
        self.signatures.get(signature_id)
        return self._entries[signature_id]

    def profile(self, signature_id: str) -> CompileProfile:
        return self.registration(signature_id).profile

    def all(self) -> list[Registration]:
        return [self._entries[s.id] for s in self.signatures.all()]


def _reward_factory(reward: RewardBundle | RewardFactory | None) -> RewardFactory:
    """A reward as compile takes it: a factory of the store and LM (a judge needs them); a
    fixed bundle or nothing (exact match) is wrapped."""
    if reward is None:
        return lambda store, lm: exact_match_reward()
    if isinstance(reward, RewardBundle):
        return lambda store, lm: reward
    return reward


def _caller_dir() -> Path | None:
    """The folder of the module calling :meth:`App.add` (two frames up)."""
    module_file = sys._getframe(2).f_globals.get("__file__")
    return Path(module_file).resolve().parent if module_file else None


def _resolve(path: Path, base: Path | None) -> Path:
    if path.is_absolute() or base is None:
        return path.resolve()
    return (base / path).resolve()
