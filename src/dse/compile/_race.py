"""``race``: successive halving with paired racing over the scoring set.

The scoring rows are put in one seeded order; a candidate is always scored on a prefix of it, so
any two candidates share their first rows and every comparison is paired.

1. The baseline is scored on every row first; it is never eliminated.
2. A round races a batch of new candidates through rungs of growing prefixes (``first_rung``
   rows, then ``eta`` times more each rung, then all rows). At each look a candidate is
   eliminated when a one-sided exact sign test on the rows it shares with the current leader
   (the best mean on that prefix) says it is worse: P(Bin(w + l, 1/2) <= w) < ``alpha`` / looks,
   where w and l count the rows it wins and loses (Bonferroni over the round's looks). When the
   budget cannot carry every survivor to the end (or at every look, with ``halving: always``),
   only the better ``1/eta`` share by mean goes on (successive halving). The first round starts
   as many candidates as fit ``race_share`` of the budget left; the rest wait in a queue.
3. After a round, finalists (scored on every row) proven worse than the leader the same way drop
   out. (A logprob-choice racer also gets, at its first look, a twin with its abstention bias
   tuned on the rows it was scored on; the twin joins the race there, for free. A tuned twin
   is judged on those rows by its cross-fitted rewards, each row's reward under a bias fitted
   without it, since a bias tuned and judged on the same rows flatters itself.) With budget
   left the search goes on with new candidates: first each logprob-choice finalist with its
   abstention bias calibrated on every row (free: the choice scores are cached), then the
   changes of the racers that beat the baseline so far combined (:func:`combined_candidates`),
   then the adaptive hook (:func:`more_candidates`, e.g. reflective proposals from the
   leaders), then untried combinations from the queue, then one ensemble of the leader
   (``ensemble_samples`` votes at ``ensemble_temperature``). It stops when the budget is spent
   (``budget_spent`` / ``time_budget``) or there is nothing new to try: ``converged`` when the
   leader is proven better than every other finalist, ``tied_best_proven`` when some are still
   tied with it.

Selection resists the winner's curse: the baseline is kept unless a finalist beats it with
confidence on the whole scoring set, i.e. a higher mean and a p-value below ``select_alpha``
adjusted for the F finalists it was picked from (:func:`~dse.eval.max_t_p_values`: sign flips of
each row's differences to the baseline for all finalists at once, so a finalist and its tuned
twins, which mostly agree, are not paid for as F independent tries the way Bonferroni would;
each finalist's sum studentized, so a noisy finalist does not hide a steady one).
Among the candidates that pass, those within a standard error of the highest mean are tied, and
the one most balanced between the rows that expect the abstention and the others wins
(:func:`~dse.compile._choices.most_balanced`; with no abstention, the highest mean); ties go to
the earliest.

Candidate generation is :func:`initial_candidates` (instructions x demo sets x decode modes x
choices x temperatures x long-context knobs, those changing one knob first) and
:func:`more_candidates` (the adaptive hook).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dse.compile._choices import (
    Calibration,
    Tally,
    abstention_rows,
    calibrate,
    choice_options,
    most_balanced,
    without_bias,
)
from dse.compile._demos import demo_options
from dse.compile._longctx_search import CHUNK_KEYS, long_context_options, refine_controller
from dse.compile._reflect import reflect
from dse.compile._search import CandidateRecord, SearchContext
from dse.eval import max_t_p_values
from dse.signature import EnsembleParams, Params
from dse.store import ExampleRow

Proposal = tuple[Params, str]
InitialFn = Callable[[SearchContext], list[Proposal]]
MoreFn = Callable[[SearchContext, list[CandidateRecord]], Awaitable[list[Proposal]]]


def initial_candidates(ctx: SearchContext) -> list[Proposal]:
    """Every combination the space offers: instructions x demo sets x decode modes x choice
    variants (x temperatures when the space lists more than one). First the ones that change a
    single knob of the baseline (what each knob alone is worth is what the race learns first),
    taking the knobs in turn (in seeded random order) so every knob is tried early, each knob's
    options in the order the space lists them (demo options: the most distinct first); then
    the rest, in seeded random order."""
    rng = random.Random(ctx.seed)
    by_knob: dict[str, list[Proposal]] = {}
    rest: list[Proposal] = []
    for proposal in _product(ctx):
        changed = _changed(ctx, proposal[0])
        if len(changed) == 1:
            by_knob.setdefault(next(iter(changed)), []).append(proposal)
        else:
            rest.append(proposal)
    knobs = sorted(by_knob)
    rng.shuffle(knobs)
    turns = itertools.zip_longest(*(by_knob[k] for k in knobs))
    singles = [proposal for turn in turns for proposal in turn if proposal is not None]
    rng.shuffle(rest)
    return singles + rest


def combined_candidates(ctx: SearchContext, winners: Sequence[Proposal]) -> list[Proposal]:
    """The baseline with the changes of two or more ``winners`` (best first) applied together:
    every pair, then all of them, skipping any whose changes touch the same knob."""
    groups: list[tuple[Proposal, ...]] = [
        *itertools.combinations(winners, 2),
        *([tuple(winners)] if len(winners) > 2 else []),
    ]
    combined: list[Proposal] = []
    for group in groups:
        changes = [_changed(ctx, params) for params, _ in group]
        if sum(len(c) for c in changes) != len(set().union(*changes)):
            continue
        update: dict[str, Any] = {}
        for (params, _), changed in zip(group, changes, strict=True):
            for knob in changed:
                if knob.startswith(_RLM_KNOB):
                    knobs = update.setdefault("rlm_lite", dict(ctx.baseline.rlm_lite or {}))
                    mine = params.rlm_lite or {}
                    knobs.update({k: v for k, v in mine.items() if _rlm_knob(k) == knob})
                    continue
                for name in _DEMO_FIELDS if knob == "demos" else (knob,):
                    update[name] = getattr(params, name)
        choices = update.get("choices")
        if choices is not None and choices.abstain_bias:
            # Tuned for another prompt on these very rows: tuned again, honestly, at first look.
            update["choices"] = choices.model_copy(update={"abstain_bias": 0.0})
        label = " + ".join(without_bias(label) for _, label in group)
        combined.append((ctx.baseline.model_copy(update=update), label))
    return combined


_DEMO_FIELDS = ("few_shot", "demo_retrieval")
_RLM_KNOB = "rlm_lite."


def _rlm_knob(key: str) -> str:
    """The knob an ``rlm_lite`` key belongs to; the chunking keys are one knob."""
    return f"{_RLM_KNOB}{'chunking' if key in CHUNK_KEYS else key}"


def _knobs(ctx: SearchContext, params: Params) -> dict[str, Any]:
    """Params as the knobs a person would name: the Params fields, except that the demos shown
    (fixed ones, the authored ones when unset, and retrieved ones) are one knob, and each
    ``rlm_lite`` setting is its own knob (the chunking policy one)."""
    values = {name: getattr(params, name) for name in type(params).model_fields}
    fixed = values.pop("few_shot")
    shown = ctx.signature.prompt.demos if fixed is None else fixed
    values["demos"] = (shown, values.pop("demo_retrieval"))
    for key, value in sorted((values.pop("rlm_lite") or {}).items()):
        values.setdefault(_rlm_knob(key), {})[key] = value
    return values


def _changed(ctx: SearchContext, params: Params) -> set[str]:
    """The knobs (see :func:`_knobs`) where ``params`` differs from the baseline."""
    base, mine = _knobs(ctx, ctx.baseline), _knobs(ctx, params)
    return {name for name in base.keys() | mine.keys() if mine.get(name) != base.get(name)}


def _product(ctx: SearchContext) -> list[Proposal]:
    demo_sets = demo_options(ctx, random.Random(ctx.seed), int(ctx.config.get("demo_sets", 8)))
    choices: dict[str, dict[str, Any]] = {"": {}, **choice_options(ctx)}
    temperatures = ctx.space.temperatures
    proposals: list[Proposal] = []
    combos = itertools.product(
        ctx.space.instructions,
        demo_sets.items(),
        ctx.space.decode,
        temperatures,
        choices.items(),
        long_context_options(ctx),
    )
    for instruction, (demos_label, demos_update), decode, temperature, choice, longctx in combos:
        choice_label, choice_update = choice
        longctx_update, longctx_label = longctx
        params = ctx.baseline.model_copy(
            update={
                **demos_update,
                **choice_update,
                **longctx_update,
                "instruction": instruction.text,
                "decode": decode,
                "model": ctx.baseline.model.model_copy(update={"temperature": temperature}),
            }
        )
        label = f"{instruction.id} | {demos_label} | {decode.mode}/{decode.demos_as}"
        if len(temperatures) > 1:
            label += f" | t={temperature}"
        if choice_label:
            label += f" | {choice_label}"
        if longctx_label:
            label += f" | {longctx_label}"
        proposals.append((params, label))
    return proposals


async def more_candidates(ctx: SearchContext, front: list[CandidateRecord]) -> list[Proposal]:
    """New candidates for an adaptive round: with a teacher, instructions it writes from the
    leader's failures (reflection), on the leader's other settings, and for an ``rlm_lite.v1``
    leader in a long-context space a paragraph appended to its controller instructions; none
    without one (a small task model writing its own instructions mostly copies them)."""
    if not front:
        return []
    leader = front[0]
    count = int(ctx.config.get("proposals_per_round", 2))
    controller = await refine_controller(ctx, leader, count)
    if ctx.teacher is None:
        return controller
    variants = await reflect(ctx, leader, count)
    return [
        *controller,
        *(
            (leader.params.model_copy(update={"instruction": v.text}), f"{v.id} <- {leader.label}")
            for v in variants
        ),
    ]


@dataclass
class _Racer:
    params: Params
    label: str
    compiled_id: str
    rewards: dict[str, float] = field(default_factory=dict)
    record: CandidateRecord | None = None
    alive: bool = True
    # Cross-fitted rewards of a tuned abstention bias, which replace the scored ones on its rows.
    honest: dict[str, float] = field(default_factory=dict)

    def take(self, record: CandidateRecord) -> None:
        self.record = record
        self.rewards = {row: self.honest.get(row, reward) for row, reward in record.rewards.items()}

    def mean(self, rows: Sequence[str]) -> float:
        return sum(self.rewards[r] for r in rows) / len(rows) if rows else 0.0


def _wins_losses(a: _Racer, b: _Racer, rows: Sequence[str]) -> tuple[int, int]:
    wins = sum(a.rewards[r] > b.rewards[r] for r in rows)
    losses = sum(a.rewards[r] < b.rewards[r] for r in rows)
    return wins, losses


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact sign test: P(X <= wins) for X ~ Bin(wins + losses, 1/2), the chance of
    winning this few of the rows that differ if both candidates were equally good."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(wins + 1)) / 2.0**n


def rungs_for(rows: int, first: int, eta: int) -> list[int]:
    """Prefix sizes of one race: ``first``, then ``eta`` times more each rung, then ``rows``."""
    sizes: list[int] = []
    size = max(1, first)
    while size < rows:
        sizes.append(size)
        size *= eta
    sizes.append(rows)
    return sizes


def plan_cost(count: int, rungs: Sequence[int], eta: int) -> int:
    """Pairs scored when ``count`` candidates race through ``rungs``, halving at each look."""
    cost = previous = 0
    alive = count
    for size in rungs:
        cost += alive * (size - previous)
        previous = size
        alive = math.ceil(alive / eta)
    return cost


class RaceOptimizer:
    id = "race"

    def __init__(self, initial: InitialFn = initial_candidates, more: MoreFn = more_candidates):
        self.initial = initial
        self.more = more

    async def search(self, ctx: SearchContext) -> None:
        config = ctx.config
        eta = max(2, int(config.get("eta", 2)))
        alpha = float(config.get("alpha", 0.05))
        share = float(config.get("race_share", 0.6))
        order = list(ctx.scoring)
        random.Random(ctx.seed * 7_919 + 1).shuffle(order)
        ids = [e.example_id for e in order]
        rungs = rungs_for(len(order), int(config.get("first_rung", 8)), eta)
        race = _Race(ctx, order, ids, rungs, eta, alpha / len(rungs))

        (base_record,) = await ctx.score([(ctx.baseline, "baseline")], order)
        baseline = _Racer(ctx.baseline, "baseline", base_record.compiled_id)
        baseline.take(base_record)
        race.count_pairs(len(base_record.rewards))
        race.racers.append(baseline)
        if not base_record.complete:
            ctx.stop_for_budget("before the baseline was scored on every row")
            return

        seen = race.seen
        seen.add(baseline.compiled_id)
        queue: list[_Racer] = []
        _enqueue(ctx, queue, seen, self.initial(ctx))
        ensembled: set[str] = set()
        calibrated: set[str] = set()
        batch = race.take(queue, share)
        while True:
            complete = not batch or await race.run(batch)
            leader, tied = race.settle()
            fresh = _tuned(ctx, seen, await _calibrated(ctx, [leader, *tied], calibrated))
            if not complete or ctx.exhausted:
                # The finalists' tuned twins cost nothing (their scores are the finalists'
                # cached ones), so a spent budget still races them before the choice.
                if fresh and await race.run(fresh):
                    race.settle()
                ctx.stop_for_budget(race.summary())
                break
            if not fresh:
                _enqueue(ctx, fresh, seen, combined_candidates(ctx, race.winners()))
            front = [r.record for r in [leader, *tied] if r.record is not None]
            if not fresh:
                _enqueue(ctx, fresh, seen, await self.more(ctx, front))
            if not fresh and queue:
                fresh = race.take(queue, share)
            if not fresh:
                fresh = self._ensemble(ctx, race, leader, seen, ensembled)
            if fresh:
                batch = fresh
                continue
            if tied:
                ctx.stop(
                    "tied_best_proven",
                    f"all {len(ids)} rows scored; {leader.label} is tied with {len(tied)} "
                    f"other finalist(s) and nothing new is left to try; {race.summary()}",
                )
            else:
                ctx.stop(
                    "converged",
                    f"{leader.label} is proven better than every other finalist and nothing "
                    f"new is left to try; {race.summary()}",
                )
            break
        chosen, why = race.select(float(config.get("select_alpha", 0.1)))
        ctx.selected = chosen.compiled_id
        if ctx.stop_reason is not None:
            ctx.stop(ctx.stop_reason.code, f"{ctx.stop_reason.text}. Chose {why}")

    def _ensemble(
        self,
        ctx: SearchContext,
        race: _Race,
        leader: _Racer,
        seen: set[str],
        ensembled: set[str],
    ) -> list[_Racer]:
        """One ensemble of the leader, once per leader, when its full score fits the budget."""
        samples = int(ctx.config.get("ensemble_samples", 0))
        if samples < 2 or leader.params.ensemble is not None or leader.compiled_id in ensembled:
            return []
        ensembled.add(leader.compiled_id)
        left = ctx.calls_left()
        if left is not None and samples * len(race.ids) * race.calls_per_row() > left:
            return []
        ensemble = EnsembleParams(
            samples=samples, temperature=float(ctx.config.get("ensemble_temperature", 0.7))
        )
        params = leader.params.model_copy(update={"ensemble": ensemble})
        fresh: list[_Racer] = []
        _enqueue(ctx, fresh, seen, [(params, f"{leader.label} | ensemble x{samples}")])
        return fresh


async def _calibrated(
    ctx: SearchContext, finalists: Sequence[_Racer], done: set[str]
) -> list[Calibration]:
    """Each logprob-choice finalist with its abstention bias tuned on the scoring rows (see
    :func:`calibrate`): free, since the per-choice scores are already cached, so it goes first."""
    found: list[Calibration] = []
    for racer in finalists:
        choices = racer.params.choices
        if choices is None or choices.pick != "logprob" or racer.compiled_id in done:
            continue
        done.add(racer.compiled_id)
        calibration = await calibrate(ctx, racer.params, racer.label)
        if calibration is not None:
            done.add(ctx.signature.compiled_id(calibration.params))
            found.append(calibration)
    return found


def _tuned(ctx: SearchContext, seen: set[str], calibrations: Sequence[Calibration]) -> list[_Racer]:
    """Racers for tuned variants not raced yet, carrying their cross-fitted rewards."""
    racers: list[_Racer] = []
    for calibration in calibrations:
        compiled_id = ctx.signature.compiled_id(calibration.params)
        if compiled_id not in seen:
            seen.add(compiled_id)
            racer = _Racer(calibration.params, calibration.label, compiled_id)
            racer.honest = dict(calibration.honest_rewards)
            racers.append(racer)
    return racers


def _enqueue(
    ctx: SearchContext, queue: list[_Racer], seen: set[str], proposals: Sequence[Proposal]
) -> None:
    for params, label in proposals:
        compiled_id = ctx.signature.compiled_id(params)
        if compiled_id not in seen:
            seen.add(compiled_id)
            queue.append(_Racer(params, label, compiled_id))


class _Race:
    """The racers of one search and the looks that eliminate them."""

    def __init__(
        self,
        ctx: SearchContext,
        order: list[ExampleRow],
        ids: list[str],
        rungs: list[int],
        eta: int,
        alpha_look: float,
    ) -> None:
        self.ctx = ctx
        self.order = order
        self.ids = ids
        self.rungs = rungs
        self.eta = eta
        self.alpha_look = alpha_look
        # Scoring rows whose expected output is the abstention: the selection weighs them.
        self.abstaining = abstention_rows(ctx.signature, [*ctx.scoring, *ctx.demo_pool])
        self.racers: list[_Racer] = []
        # Compiled ids raced so far, and those whose bias was tuned at their first look.
        self.seen: set[str] = set()
        self.calibrated: set[str] = set()
        self.eliminated = 0
        self.cut = 0
        self._start_calls = ctx.budget.charged_calls
        self._pairs = 0

    @property
    def baseline(self) -> _Racer:
        return self.racers[0]

    def count_pairs(self, pairs: int) -> None:
        self._pairs += pairs

    def calls_per_row(self) -> float:
        """LM calls one scored pair has cost so far (repairs, ensembles), at least one."""
        spent = self.ctx.budget.charged_calls - self._start_calls
        return max(1.0, spent / self._pairs) if self._pairs else 1.0

    def take(self, queue: list[_Racer], share: float) -> list[_Racer]:
        """Pop as many queued candidates as a halving race can carry on ``share`` of the budget
        left (at least one)."""
        left = self.ctx.calls_left()
        count = len(queue)
        if left is not None:
            allowance = share * left / self.calls_per_row()
            while count > 1 and plan_cost(count, self.rungs, self.eta) > allowance:
                count -= 1
        batch, queue[:] = queue[:count], queue[count:]
        return batch

    async def run(self, batch: list[_Racer]) -> bool:
        """Race ``batch`` (with the finalists already scored) to the last rung; False when the
        budget cut a score short."""
        self.racers.extend(batch)
        for size in self.rungs:
            rows = self.ids[:size]
            todo = [r for r in batch if r.alive and len(r.rewards) < size]
            if todo:
                records = await self.ctx.score(
                    [(r.params, r.label) for r in todo],
                    self.order[:size],
                    minibatch=size < len(self.ids),
                )
                for racer, record in zip(todo, records, strict=True):
                    self._pairs += len(record.rewards) - len(racer.rewards)
                    racer.take(record)
                if not all(r.complete for r in records):
                    return False
            if size == len(self.ids):
                return True
            joined = await self._calibrated_early(batch, size)
            batch.extend(joined)
            self.racers.extend(joined)
            self._look(batch, rows, size)
        return True

    async def _calibrated_early(self, batch: list[_Racer], size: int) -> list[_Racer]:
        """At its first look, each logprob-choice racer's twin with the abstention bias tuned on
        the rows it was scored on, joining the race at this rung: at bias 0 a small model's
        picks can look poor and be cut before it ever reaches the finalists' calibration. Free:
        the per-choice scores are cached."""
        joined: list[_Racer] = []
        for racer in list(batch):
            choices = racer.params.choices
            if not racer.alive or choices is None or choices.pick != "logprob":
                continue
            if racer.compiled_id in self.calibrated:
                continue
            self.calibrated.add(racer.compiled_id)
            found = await calibrate(self.ctx, racer.params, racer.label, self.order[:size])
            if found is None:
                continue
            for twin in _tuned(self.ctx, self.seen, [found]):
                self.calibrated.add(twin.compiled_id)
                (record,) = await self.ctx.score(
                    [(twin.params, twin.label)], self.order[:size], minibatch=size < len(self.ids)
                )
                twin.take(record)
                joined.append(twin)
        return joined

    def _look(self, batch: list[_Racer], rows: list[str], size: int) -> None:
        """Eliminate the batch's racers proven worse than the leader on ``rows``, then keep only
        the better share: at every look with ``halving: always``, else when the budget cannot
        carry the rest to the end."""
        alive = [r for r in self.racers if r.alive and len(r.rewards) >= size]
        leader = max(alive, key=lambda r: r.mean(rows))
        for racer in batch:
            if racer.alive and racer is not leader and self._worse(racer, leader, rows):
                racer.alive = False
                self.eliminated += 1
        going = [r for r in batch if r.alive]
        if self.ctx.config.get("halving", "when_short") != "always":
            left = self.ctx.calls_left()
            need = len(going) * (len(self.ids) - size) * self.calls_per_row()
            if left is None or need <= left:
                return
        keep = math.ceil(len(going) / self.eta)
        ranked = sorted(going, key=lambda r: r.mean(rows), reverse=True)
        for racer in ranked[keep:]:
            racer.alive = False
            self.cut += 1

    def _worse(self, racer: _Racer, leader: _Racer, rows: Sequence[str]) -> bool:
        if racer is self.baseline:
            return False
        wins, losses = _wins_losses(racer, leader, rows)
        return sign_test(wins, losses) < self.alpha_look

    def winners(self, most: int = 3) -> list[Proposal]:
        """Up to ``most`` racers that beat the baseline on the rows they share with it, by how
        much (eliminated ones included: a knob can help even where its racer was cut)."""
        baseline = self.baseline
        ahead: list[tuple[float, _Racer]] = []
        for racer in self.racers[1:]:
            rows = [r for r in self.ids if r in racer.rewards]
            if rows:
                lead = racer.mean(rows) - baseline.mean(rows)
                if lead > 0:
                    ahead.append((lead, racer))
        ahead.sort(key=lambda item: -item[0])
        return [(racer.params, racer.label) for _, racer in ahead[:most]]

    def finalists(self) -> list[_Racer]:
        return [r for r in self.racers if r.alive and len(r.rewards) == len(self.ids)]

    def settle(self) -> tuple[_Racer, list[_Racer]]:
        """The leader on every row and the finalists still tied with it; the others are proven
        worse and drop out (the baseline stays, as the reference the selection compares with)."""
        finalists = self.finalists()
        leader = max(finalists, key=lambda r: r.mean(self.ids))
        tied = []
        for racer in finalists:
            if racer is leader:
                continue
            wins, losses = _wins_losses(racer, leader, self.ids)
            if sign_test(wins, losses) >= self.alpha_look:
                tied.append(racer)
            elif racer is not self.baseline:
                racer.alive = False
                self.eliminated += 1
        return leader, tied

    def select(self, select_alpha: float) -> tuple[_Racer, str]:
        """The baseline unless a finalist beats it with confidence (see the module docstring)."""
        baseline = self.baseline
        rivals = [r for r in self.finalists() if r is not baseline]
        base_mean = baseline.mean(self.ids)
        differences = [[r.rewards[i] - baseline.rewards[i] for i in self.ids] for r in rivals]
        p_values = max_t_p_values(differences, seed=self.ctx.seed)
        winners = [
            (racer, p)
            for racer, p in zip(rivals, p_values, strict=True)
            if racer.mean(self.ids) > base_mean and p < select_alpha
        ]
        if not winners:
            closest = f" (best adjusted p = {min(p_values):.3f})" if p_values else ""
            return baseline, (
                f"the baseline: none of {len(rivals)} finalist(s) beats it with confidence "
                f"on {len(self.ids)} rows{closest}"
            )
        expecting = [i in self.abstaining for i in self.ids]
        chosen = most_balanced(
            [Tally.of(w, [w[0].rewards[i] for i in self.ids], expecting) for w in winners],
            len(self.ids),
            sum(expecting),
        )
        best, p = chosen.option
        wins, losses = _wins_losses(best, baseline, self.ids)
        top = max(racer.mean(self.ids) for racer, _ in winners)
        balanced = (
            f"; chosen over the best mean {top:.3f} as the finalist within a standard error of "
            "it that does best on the abstention's rows and the others alike"
            if best.mean(self.ids) < top
            else ""
        )
        return best, (
            f"{best.label}: {best.mean(self.ids):.3f} vs baseline {base_mean:.3f} on "
            f"{len(self.ids)} rows ({wins} rows won, {losses} lost; p = {p:.3f} adjusted "
            f"for {len(rivals)} finalist(s){balanced})"
        )

    def summary(self) -> str:
        return (
            f"{len(self.racers)} candidates raced, {self.eliminated} eliminated by paired "
            f"tests, {self.cut} cut by halving, {len(self.finalists())} finalists"
        )
