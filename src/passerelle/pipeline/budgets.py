"""Budgets: reserve the worst case before calling a provider, settle the real cost after.

For every budget that applies to a request (its key, user, team, project, client; this UTC day
or month), the request's worst-case cost is added to the budget's counter before any provider is
called, in one atomic step that refuses if any cap would be passed. When the request ends, however
it ends (answered, failed, streamed, cut, the caller gone), the reservation is replaced by what
the provider's usage report says it cost, or released. So concurrent requests, streams and any
number of instances sharing Redis cannot spend past a cap by more than what one request used
beyond its reservation; and nothing can be sent unreserved.

The worst case is the prompt's size at one token per three bytes of JSON (a prompt's real count
is lower, often half) plus the output the request allows (``max_tokens`` and its equivalents,
else ``limits.default_output_tokens``), priced at the dearest route the request may take.

Counters start from the audit trail, which is the ledger: when a counter does not exist (a new
period, a restarted single instance, a flushed Redis), what the trail says this scope spent in the
period is read and seeded, and only then is the reservation made.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from passerelle.config import Config
from passerelle.config.schema import Budget, BudgetAction, BudgetPeriod, BudgetScope
from passerelle.core.context import Principal
from passerelle.errors import BudgetExceeded, LimitsUnavailable, PasserelleError
from passerelle.pipeline.routing import RouteTarget
from passerelle.providers.base import Operation, Wire
from passerelle.providers.pricing import PriceTable
from passerelle.state.counters import (
    Admitted,
    Charge,
    Counters,
    StateUnavailableError,
    Window,
)
from passerelle.state.settler import Settler
from passerelle.storage.db import Database
from passerelle.storage.keys import KeyStore
from passerelle.storage.spend import format_usd, spent_micro_usd

log = logging.getLogger("passerelle.budgets")

BYTES_PER_TOKEN_WORST = 3
"""Prompt bytes per token when reserving: a pessimistic count (English prose is about 4)."""

_SEED_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget crossed its soft threshold, or refused a request at its hard cap."""

    level: str  # "soft" or "hard"
    budget: str  # its label, e.g. "project:horizon-mobile/month"
    scope: str
    name: str
    period: str  # e.g. "2026-11" or "2026-11-29"
    spent_micro_usd: int
    threshold_micro_usd: int
    action: str

    def payload(self) -> dict[str, Any]:
        return {
            "event": f"budget.{self.level}",
            "budget": self.budget,
            "scope": self.scope,
            "name": self.name,
            "period": self.period,
            "spent_usd": format_usd(self.spent_micro_usd),
            "threshold_usd": format_usd(self.threshold_micro_usd),
            "on_breach": self.action,
        }


@dataclass(frozen=True, slots=True)
class _Applied:
    budget: Budget
    index: int
    name: str
    period: str
    since_day: str
    until_day: str
    charge: Charge


@dataclass(slots=True)
class BudgetHold:
    """The reservation one request holds; ``settle`` replaces it by the real cost."""

    applied: tuple[_Applied, ...]
    amount: int

    @property
    def keys(self) -> list[str]:
        return [a.charge.key for a in self.applied]

    def labels(self) -> list[str]:
        return [a.budget.label for a in self.applied]


@dataclass(frozen=True, slots=True)
class Downgrade:
    """Send the request to ``alias`` instead: a budget past its soft threshold says so."""

    alias: str
    budget: str


AlertSink = Callable[[BudgetAlert], None]


class Budgets:
    """The configured budgets, checked against shared counters."""

    def __init__(
        self,
        config: Config,
        counters: Counters,
        db: Database,
        prices: PriceTable,
        alert: AlertSink,
        *,
        clock: Callable[[], float] | None = None,
        settler: Settler | None = None,
    ) -> None:
        self._config = config
        self._settler = settler
        self._budgets = tuple(config.file.budgets)
        self._counters = counters
        self._db = db
        self._prices = prices
        self._alert = alert
        self._default_output = config.file.limits.default_output_tokens
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC).timestamp())

    def __bool__(self) -> bool:
        return bool(self._budgets)

    # -- what applies ------------------------------------------------------------------------

    def applicable(self, principal: Principal) -> tuple[_Applied, ...]:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        out: list[_Applied] = []
        for index, budget in enumerate(self._budgets):
            name = _name_for(budget.scope, principal)
            if name is None or (budget.match != "*" and budget.match != name):
                continue
            period, since, until, expires = _period(budget.period, now)
            key = f"budget:{budget.scope.value}:{budget.match}:{name}:{period}"
            out.append(
                _Applied(
                    budget,
                    index,
                    name,
                    period,
                    since,
                    until,
                    Charge(key, budget.hard_micro_usd, expires),
                )
            )
        return tuple(out)

    def worst_case(
        self,
        targets: Sequence[RouteTarget],
        operation: Operation,
        surface: Wire,
        body: Mapping[str, Any],
    ) -> int:
        """The most this request can cost, micro-USD, on the dearest of ``targets``."""
        prompt = -(-len(orjson.dumps(body)) // BYTES_PER_TOKEN_WORST)
        output = 0
        if operation is not Operation.EMBED:
            requested = requested_output_tokens(surface, body)
            output = requested if requested is not None else self._default_output
        worst = 0
        for target in targets:
            kind = target.provider.config.kind.value
            price = None
            for candidate in (target.pricing_model, target.model):
                if candidate and price is None:
                    price = self._prices.lookup(kind, candidate)
            if price is None:
                continue
            per_output = max(price.output, price.reasoning or 0)
            cost = -(-(prompt * price.input + output * per_output) // 1_000_000)
            worst = max(worst, cost)
        return worst

    # -- reserve, settle ---------------------------------------------------------------------

    async def reserve(
        self,
        principal: Principal,
        alias: str,
        amount: int,
        *,
        windows: Sequence[Window] = (),
        allow_downgrade: bool = True,
    ) -> tuple[Admitted, BudgetHold | Downgrade | None]:
        """Count the request in its rate-limit ``windows`` and reserve ``amount`` on every budget
        that applies, in one atomic step: both or neither.

        Returns what the windows said (a refusal is the caller's to raise, and then nothing was
        reserved) and the hold (None when no budget applies), or a :class:`Downgrade` (then
        nothing stays counted). Raises :class:`BudgetExceeded` at a hard cap and
        :class:`LimitsUnavailable` when the counters (or the ledger that seeds them) cannot be
        reached: fail closed."""
        applied = self.applicable(principal)
        charges = [a.charge for a in applied]
        try:
            if not applied:
                return (await self._counters.admit(windows) if windows else Admitted(True)), None
            settled = False
            for _ in range(_SEED_ATTEMPTS + 1):
                seen = self._settler.sent if self._settler is not None else 0
                admitted, result = await self._counters.admit_and_reserve(windows, charges, amount)
                if not admitted.ok:
                    return admitted, None
                if result.unseeded:
                    await self._seed([applied[i] for i in result.unseeded])
                elif result.ok or settled or self._settler is None:
                    break
                else:  # finished requests' reservations may still be counted: settle, retry
                    settled = True
                    if not await self._settler.settle_now(seen):
                        break
            else:
                raise StateUnavailableError("budget counters vanished while being seeded")
            if not result.ok:
                assert result.breached is not None
                breached = applied[result.breached]
                downgrade = self._downgrade_for(
                    applied, result.totals, alias, principal, breached=result.breached
                )
                if allow_downgrade and downgrade is not None:
                    return admitted, downgrade
                await self._notify("hard", breached, result.totals[result.breached])
                raise _refusal(breached, result.totals[result.breached], amount)
            hold = BudgetHold(applied, amount)
            before = [total - amount for total in result.totals]
            downgrade = self._downgrade_for(applied, tuple(before), alias, principal)
            if allow_downgrade and downgrade is not None:
                uncount = {w.key: -w.cost for w in windows}
                await self._counters.settle(dict.fromkeys(hold.keys, -amount), uncount)
                return admitted, downgrade
            for item, prior, total in zip(applied, before, result.totals, strict=True):
                soft = item.budget.soft_micro_usd
                if soft is not None and prior < soft <= total:
                    await self._notify("soft", item, total)
            return admitted, hold
        except StateUnavailableError as exc:
            log.error("budgets and rate limits cannot be checked: %s", exc)
            raise LimitsUnavailable(
                "Budgets and rate limits cannot be checked right now: the gateway's shared state "
                "does not answer, so this request was not sent (they fail closed). Retry in a "
                "moment; if it lasts, an administrator must check Redis.",
            ) from None

    def _downgrade_for(
        self,
        applied: Sequence[_Applied],
        spent: tuple[int, ...],
        alias: str,
        principal: Principal,
        *,
        breached: int | None = None,
    ) -> Downgrade | None:
        """The first downgrade budget past its soft threshold, or the one whose cap this
        request would pass, sends the request to its cheaper alias (when the project may use it
        and it is not the alias already asked for)."""
        allowed = self._config.models_for_project(principal.project)
        for index, (item, total) in enumerate(zip(applied, spent, strict=True)):
            budget = item.budget
            if budget.action is not BudgetAction.DOWNGRADE:
                continue
            target = budget.downgrade_for(alias)
            if target is None:
                continue
            if target == alias or target not in allowed:
                continue
            soft = budget.soft_micro_usd
            if (soft is not None and total >= soft) or index == breached:
                return Downgrade(target, budget.label)
        return None

    async def _seed(self, items: Sequence[_Applied]) -> None:
        for item in items:
            try:
                spent = await asyncio.to_thread(
                    spent_micro_usd,
                    self._db,
                    item.budget.scope.value,
                    item.name,
                    item.since_day,
                    item.until_day,
                )
            except PasserelleError as exc:
                raise StateUnavailableError(f"the audit trail cannot be read: {exc}") from None
            await self._counters.seed(item.charge, spent)

    async def _notify(self, level: str, item: _Applied, spent: int) -> None:
        """Raise an alert once per budget, period and level, across instances."""
        budget = item.budget
        threshold = budget.soft_micro_usd if level == "soft" else budget.hard_micro_usd
        assert threshold is not None
        first = await self._counters.once(
            f"alert:{item.charge.key}:{level}", item.charge.expires_at
        )
        if not first:
            return
        self._alert(
            BudgetAlert(
                level=level,
                budget=budget.label,
                scope=budget.scope.value,
                name=item.name,
                period=item.period,
                spent_micro_usd=spent,
                threshold_micro_usd=threshold,
                action=budget.action.value,
            )
        )


def _refusal(item: _Applied, spent: int, amount: int) -> BudgetExceeded:
    budget = item.budget
    period_word = "today" if budget.period is BudgetPeriod.DAY else "this month"
    return BudgetExceeded(
        f"Budget reached: {budget.scope.value} '{item.name}' has spent {format_usd(spent)} USD "
        f"{period_word} of its {format_usd(budget.hard_micro_usd)} USD cap (budgets[{item.index}]"
        f", {budget.label}); this request could cost up to {format_usd(amount)} USD. Ask for a "
        "smaller answer (max_tokens), use a cheaper model, or ask an administrator to raise the "
        "budget.",
        headers={"x-passerelle-budget": budget.label},
    )


def _name_for(scope: BudgetScope, principal: Principal) -> str | None:
    if scope is BudgetScope.KEY:
        return principal.key_prefix
    if scope is BudgetScope.USER:
        return principal.email
    if scope is BudgetScope.TEAM:
        return principal.team
    if scope is BudgetScope.PROJECT:
        return principal.project
    return principal.client


def _period(period: BudgetPeriod, now: dt.datetime) -> tuple[str, str, str, int]:
    """The period's id, first and last UTC day, and when its counter may be forgotten."""
    if period is BudgetPeriod.DAY:
        day = now.date()
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        return day.isoformat(), day.isoformat(), day.isoformat(), int(end.timestamp()) + 2 * 86400
    last = calendar.monthrange(now.year, now.month)[1]
    first_day = dt.date(now.year, now.month, 1)
    last_day = dt.date(now.year, now.month, last)
    end = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (
        f"{now.year:04d}-{now.month:02d}",
        first_day.isoformat(),
        last_day.isoformat(),
        int(end.timestamp()) + 2 * 86400,
    )


def requested_output_tokens(surface: Wire, body: Mapping[str, Any]) -> int | None:
    """The most output tokens a request allows, in its own format's field; None if unset."""
    value: Any = None
    if surface is Wire.ANTHROPIC:
        value = body.get("max_tokens")
    elif surface is Wire.OPENAI_RESPONSES:
        value = body.get("max_output_tokens")
    elif surface is Wire.GEMINI:
        config = body.get("generationConfig") or body.get("generation_config")
        if isinstance(config, dict):
            value = config.get("maxOutputTokens", config.get("max_output_tokens"))
    else:
        value = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


# -- reports -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget stands for one of its scope's members, from the audit trail."""

    budget: str
    index: int
    scope: str
    name: str
    period: str
    spent_micro_usd: int
    soft_micro_usd: int | None
    hard_micro_usd: int
    action: str

    @property
    def state(self) -> str:
        if self.spent_micro_usd >= self.hard_micro_usd:
            return "capped"
        if self.soft_micro_usd is not None and self.spent_micro_usd >= self.soft_micro_usd:
            return "soft"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "index": self.index,
            "scope": self.scope,
            "name": self.name,
            "period": self.period,
            "spent_usd": format_usd(self.spent_micro_usd),
            "soft_usd": None if self.soft_micro_usd is None else format_usd(self.soft_micro_usd),
            "hard_usd": format_usd(self.hard_micro_usd),
            "used_percent": round(100 * self.spent_micro_usd / self.hard_micro_usd, 1)
            if self.hard_micro_usd
            else None,
            "state": self.state,
            "action": self.action,
        }


def budget_report(
    config: Config, db: Database, members: Mapping[str, Sequence[str]]
) -> list[BudgetStatus]:
    """Every configured budget for the current period: for a budget on one name, that name; for
    ``'*'``, every member of the scope (``members``: key prefixes, user e-mails, and so on) that
    spent something. Spend is what the audit trail holds (settled requests; the few still in
    flight are not counted)."""
    now = dt.datetime.now(dt.UTC)
    out: list[BudgetStatus] = []
    for index, budget in enumerate(config.file.budgets):
        period, since, until, _ = _period(budget.period, now)
        scope = budget.scope.value
        names = [budget.match] if budget.match != "*" else list(members.get(scope, ()))
        for name in names:
            spent = spent_micro_usd(db, scope, name, since, until)
            if budget.match == "*" and not spent:
                continue
            out.append(
                BudgetStatus(
                    budget=budget.label,
                    index=index,
                    scope=scope,
                    name=name,
                    period=period,
                    spent_micro_usd=spent,
                    soft_micro_usd=budget.soft_micro_usd,
                    hard_micro_usd=budget.hard_micro_usd,
                    action=budget.action.value,
                )
            )
    out.sort(key=lambda s: s.spent_micro_usd / max(1, s.hard_micro_usd), reverse=True)
    return out


def scope_members(config: Config, keys: KeyStore) -> dict[str, list[str]]:
    """Everyone a ``'*'`` budget may apply to."""
    users = keys.list_users()
    return {
        "key": [k.prefix for k in keys.list_keys(include_revoked=True)],
        "user": [u.email for u in users],
        "team": sorted({u.team for u in users if u.team} | set(config.file.teams)),
        "project": list(config.file.projects),
        "client": list(config.file.clients),
    }
