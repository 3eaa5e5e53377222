"""``CreditBudget``: decide whether the next submit may go without spend passing a limit (pure).

Spend, as the budget counts it, is the credits consumed by finished jobs plus a reservation for
every job in flight, priced at the highest per-job cost seen for its model (or a price the user
gave, raised to the highest cost seen if a job cost more). A submit goes only if it fits:
``spent + reserved + price <= limit``. Until a model's price is known, a job of it goes only
when nothing at all is in flight (its cost is learned from its result), so at most one job of
unknown cost is ever running.

The guarantee (property-tested): spend never passes the limit when no job costs more than its
reservation: a given price that bounds the real cost, or a learned one when a model's jobs
cost the same (a failure may cost nothing). The first job of a model with no price given can
only be bounded by the limit itself.

Jobs whose submit may or may not have been charged (``uncertain`` in a durable run) are held:
reserved forever at their model's price; while that price is unknown they keep every job of
unknown price from going.

No I/O, no clock: the caller reports what happened (``reserve``, ``settle``, ``release``,
``hold``) and asks ``decide`` / ``fits`` before each submit.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from decimal import Decimal, InvalidOperation

import attrs

from .errors import ValidationError

__all__ = ["BudgetDecision", "CreditBudget", "as_credits"]


def as_credits(value: object, *, field: str = "credits") -> Decimal:
    """``value`` (a number or a numeric string) as a finite, non-negative ``Decimal``.

    Raises:
        ValidationError: It is not a finite number >= 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValidationError(field, f"must be a number of credits, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError(field, f"must be a number of credits, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValidationError(field, f"must be a finite number >= 0, got {value!r}")
    return number


class BudgetDecision(str, enum.Enum):
    """What to do with the next submit."""

    GO = "go"  # it fits: reserve it and send it
    WAIT = "wait"  # it does not fit now, but a job in flight may settle for less or teach a price
    STOP = "stop"  # it will not fit: nothing in flight can change that

    def __str__(self) -> str:
        return self.value


def _limit(value: object) -> Decimal:
    return as_credits(value, field="max_credits")


def _price(value: object) -> Decimal | None:
    return None if value is None else as_credits(value, field="price")


def _spent(value: object) -> Decimal:
    return as_credits(value, field="spent")


@attrs.define
class CreditBudget:
    """A credit limit and what counts against it (see the module docstring).

    Args:
        limit: Credits that may be spent in all (``max_credits``).
        price: Credits one job costs at most, for every model (None: learn it per model).
        spent: Credits already consumed (e.g. by earlier runs of the same journal).

    Raises:
        ValidationError: A negative or non-numeric ``limit``, ``price`` or ``spent``.
    """

    limit: Decimal = attrs.field(converter=_limit)
    price: Decimal | None = attrs.field(default=None, converter=_price, kw_only=True)
    spent: Decimal = attrs.field(default=Decimal(0), converter=_spent, kw_only=True)
    _highest: dict[str, Decimal] = attrs.field(factory=dict, init=False)
    _flight: dict[Hashable, str] = attrs.field(factory=dict, init=False)
    _held: dict[Hashable, str] = attrs.field(factory=dict, init=False)

    # -- what it knows ----------------------------------------------------------------------

    def price_of(self, model: str) -> Decimal | None:
        """The price a job of ``model`` is reserved at (None while unknown).

        The user's price, or the highest cost seen for the model if a job cost more.
        """
        seen = self._highest.get(model)
        if self.price is None or seen is None:
            return self.price if seen is None else seen
        return max(self.price, seen)

    @property
    def in_flight(self) -> int:
        """Jobs reserved and not settled (held jobs not included)."""
        return len(self._flight)

    @property
    def reserved(self) -> Decimal:
        """Credits reserved for jobs in flight and held jobs (unknown prices count 0)."""
        total = Decimal(0)
        for model in (*self._flight.values(), *self._held.values()):
            total += self.price_of(model) or 0
        return total

    @property
    def committed(self) -> Decimal:
        """``spent + reserved``: what spend could reach if every reservation is charged."""
        return self.spent + self.reserved

    @property
    def remaining(self) -> Decimal:
        """Credits neither spent nor reserved (never below 0)."""
        return max(Decimal(0), self.limit - self.committed)

    def _unknown_held(self) -> bool:
        return any(self.price_of(m) is None for m in self._held.values())

    # -- deciding ---------------------------------------------------------------------------

    def decide(self, model: str) -> BudgetDecision:
        """Whether a job of ``model`` may be submitted now, later, or not at all."""
        price = self.price_of(model)
        if price is None:
            fits = not self._flight and not self._unknown_held() and self.committed < self.limit
        else:
            fits = self.committed + price <= self.limit
        if fits:
            return BudgetDecision.GO
        return BudgetDecision.WAIT if self._flight else BudgetDecision.STOP

    def fits(self, model: str) -> bool:
        """True when a job of ``model`` may be submitted now (``decide`` says GO)."""
        return self.decide(model) is BudgetDecision.GO

    # -- what happened ----------------------------------------------------------------------

    def learn(self, model: str, cost: Decimal) -> None:
        """Remember that a job of ``model`` cost ``cost`` (raises the model's price if higher)."""
        if cost > self._highest.get(model, Decimal(-1)):
            self._highest[model] = cost

    def reserve(self, token: Hashable, model: str) -> None:
        """A job of ``model`` is (about to be) in flight, under ``token``.

        Raises:
            ValueError: ``token`` is already reserved or held.
        """
        if token in self._flight or token in self._held:
            raise ValueError(f"{token!r} is already reserved")
        self._flight[token] = model

    def settle(self, token: Hashable, consumed: Decimal | None, *, failed: bool = False) -> None:
        """The job ``token`` finished having consumed ``consumed`` credits.

        ``None`` (the API did not say) counts the job's reserved price as spent (0 while the
        price is unknown). A failed job's cost is spent but teaches a price only when it is
        above zero (a free failure says nothing about what a success costs). An unknown token
        (never reserved) only adds to ``spent``.
        """
        model = self._flight.pop(token, None) or self._held.pop(token, None)
        if consumed is None:
            price = None if model is None else self.price_of(model)
            self.spent += price or 0
            return
        self.spent += consumed
        if model is not None and not (failed and consumed <= 0):
            self.learn(model, consumed)

    def release(self, token: Hashable) -> None:
        """The job ``token`` was not created (nothing charged): drop its reservation."""
        self._flight.pop(token, None)

    def hold(self, token: Hashable) -> None:
        """The job ``token`` may or may not have been charged, and will never say: keep its
        reservation for good (it stops counting as in flight)."""
        model = self._flight.pop(token, None)
        if model is not None:
            self._held[token] = model
