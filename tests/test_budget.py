"""Tests of the pure credit budget (``ketchup_async._budget``)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async import BudgetDecision, CreditBudget, ValidationError
from ketchup_async._budget import as_credits

GO, WAIT, STOP = BudgetDecision.GO, BudgetDecision.WAIT, BudgetDecision.STOP
M = "google/gempix2"
D = Decimal


def test_unknown_price_allows_one_job_in_flight() -> None:
    """Before any price is known, a second job waits for the first."""
    budget = CreditBudget(10)
    assert budget.decide(M) is GO
    budget.reserve(1, M)
    assert budget.decide(M) is WAIT


def test_a_learned_price_reserves_every_job_in_flight() -> None:
    """Once a job cost 0.5, jobs go while spent + 0.5 per job in flight + 0.5 <= limit."""
    budget = CreditBudget(2)
    budget.reserve(1, M)
    budget.settle(1, D("0.5"))
    sent = 0
    while budget.decide(M) is GO:
        sent += 1
        budget.reserve(("job", sent), M)
    assert sent == 3
    assert budget.committed == D(2)
    assert budget.decide(M) is WAIT


def test_the_highest_cost_seen_is_the_price() -> None:
    """A job that cost more than earlier ones raises the model's price; a cheaper one does not."""
    budget = CreditBudget(10)
    for token, cost in ((1, "0.5"), (2, "1.5"), (3, "1.0")):
        budget.reserve(token, M)
        budget.settle(token, D(cost))
    assert budget.price_of(M) == D("1.5")
    assert budget.price_of("google/gemini-2.5-flash-image") is None


def test_a_user_price_is_used_from_the_start() -> None:
    """With a price, several jobs go before any has finished."""
    budget = CreditBudget(1, price="0.25")
    for token in range(4):
        assert budget.decide(M) is GO
        budget.reserve(token, M)
    assert budget.decide(M) is WAIT


def test_a_cost_above_the_user_price_raises_it() -> None:
    """A job that cost more than the given price is the new price."""
    budget = CreditBudget(10, price="0.25")
    budget.reserve(1, M)
    budget.settle(1, D("0.5"))
    assert budget.price_of(M) == D("0.5")


def test_nothing_in_flight_and_no_room_is_stop() -> None:
    """When nothing in flight can free room, the decision is STOP."""
    budget = CreditBudget(1, spent="0.75", price="0.5")
    assert budget.decide(M) is STOP


def test_a_released_job_frees_its_reservation() -> None:
    """A submit that created no task gives its reservation back."""
    budget = CreditBudget(1, price="1")
    budget.reserve(1, M)
    assert budget.decide(M) is WAIT
    budget.release(1)
    assert budget.decide(M) is GO


def test_a_held_job_stays_reserved_and_is_not_in_flight() -> None:
    """An uncertain job keeps its reservation for good; a held unknown price blocks."""
    budget = CreditBudget(1, price="0.5")
    budget.reserve(1, M)
    budget.hold(1)
    assert (budget.in_flight, budget.reserved) == (0, D("0.5"))
    unknown = CreditBudget(5)
    unknown.reserve(1, M)
    unknown.hold(1)
    assert unknown.decide(M) is STOP


def test_an_unreported_cost_spends_the_reserved_price() -> None:
    """A result without ``consumed`` counts its reservation as spent."""
    budget = CreditBudget(5, price="0.5")
    budget.reserve(1, M)
    budget.settle(1, None)
    assert budget.spent == D("0.5")


def test_earlier_spend_counts() -> None:
    """Credits spent by earlier runs leave less room."""
    budget = CreditBudget(10, spent=10, price="0.5")
    assert budget.decide(M) is STOP


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("max_credits", {"limit": -1}),
        ("price", {"limit": 1, "price": "x"}),
        ("max_credits", {"limit": True}),
    ],
)
def test_bad_values_name_their_field(field: str, kwargs: dict[str, object]) -> None:
    """A negative or non-numeric value is a ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        CreditBudget(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


# -- the invariant: whatever happens, the server never charges more than the budget ----------


@attrs.define
class _World:
    """A run against a server that charges each created task when it finishes."""

    limit: Decimal
    price: Decimal | None
    budget: CreditBudget
    charged: Decimal = Decimal(0)  # what the server charged (finished tasks)
    finished: list[tuple[Decimal, bool]] = attrs.Factory(list)  # the journal: (cost, failed)
    failed: set[int] = attrs.Factory(set)  # jobs that fail (cost 0)
    flight: dict[int, Decimal] = attrs.Factory(dict)  # created tasks, not finished: their cost
    maybe: dict[int, Decimal] = attrs.Factory(dict)  # uncertain after a kill: charged anyway

    def outstanding(self) -> Decimal:
        return sum(self.flight.values(), Decimal(0)) + sum(self.maybe.values(), Decimal(0))

    def kill(self, uncertain: set[int]) -> None:
        """The process dies; a resume rebuilds its budget from the journal."""
        spent = sum((cost for cost, _ in self.finished), D(0))
        budget = CreditBudget(self.limit, price=self.price, spent=spent)
        for cost, failed in self.finished:
            if cost > 0 or not failed:
                budget.learn(M, cost)
        for token in self.maybe:  # still uncertain in the journal
            budget.reserve(token, M)
            budget.hold(token)
        for token in list(self.flight):
            budget.reserve(token, M)
            if token in uncertain:  # killed while its submit was on the wire
                budget.hold(token)
                self.maybe[token] = self.flight.pop(token)
        self.budget = budget


def _run(data: st.DataObject, world: _World, costs: list[Decimal]) -> None:
    next_job = 0
    for _ in range(len(costs) * 3 + 5):
        action = data.draw(st.sampled_from(["submit", "submit", "finish", "kill"]))
        if action == "submit" and next_job < len(costs):
            if world.budget.decide(M) is GO:
                world.budget.reserve(next_job, M)
                world.flight[next_job] = costs[next_job]
                next_job += 1
        elif action == "finish" and world.flight:
            token = data.draw(st.sampled_from(sorted(world.flight)))
            cost = world.flight.pop(token)
            world.charged += cost
            world.finished.append((cost, token in world.failed))
            world.budget.settle(token, cost, failed=token in world.failed)
        elif action == "kill":
            world.kill(set(data.draw(st.lists(st.sampled_from(sorted(world.flight) or [-1])))))
        assert world.charged + world.outstanding() <= world.limit


_cents = st.integers(min_value=0, max_value=400).map(lambda n: Decimal(n) / 100)


@given(data=st.data(), limit=_cents, price=_cents, n=st.integers(0, 30))
def test_spend_never_exceeds_the_budget_with_a_price(
    data: st.DataObject, limit: Decimal, price: Decimal, n: int
) -> None:
    """With a price bounding every job's cost: any costs, failures (0) and kills stay in budget."""
    costs = data.draw(st.lists(_cents.filter(lambda c: c <= price), min_size=n, max_size=n))
    world = _World(limit, price, CreditBudget(limit, price=price))
    _run(data, world, costs)


@given(data=st.data(), limit=_cents, cost=_cents, n=st.integers(0, 30))
def test_spend_never_exceeds_the_budget_with_learned_prices(
    data: st.DataObject, limit: Decimal, cost: Decimal, n: int
) -> None:
    """Prices learned from results (a job costs its model's price, or 0 when it fails; the first
    fits the budget): any failures and kills stay in budget."""
    if cost > limit:
        cost = limit
    failed = set(data.draw(st.lists(st.integers(0, max(0, n - 1)))))
    costs = [Decimal(0) if i in failed else cost for i in range(n)]
    world = _World(limit, None, CreditBudget(limit), failed=failed)
    _run(data, world, costs)


# Exact edges of the budget rules (each pins one operator).


def test_decision_values() -> None:
    """The decisions are named go, wait and stop (also as str)."""
    assert [(d.value, str(d)) for d in BudgetDecision] == [
        ("go", "go"),
        ("wait", "wait"),
        ("stop", "stop"),
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, "must be a number of credits, got True"),
        ([1], "must be a number of credits, got [1]"),
        (Fraction(2), "must be a number of credits, got Fraction(2, 1)"),
        ("lots", "must be a number of credits, got 'lots'"),
        ("-1", "must be a finite number >= 0, got '-1'"),
        (-0.5, "must be a finite number >= 0, got -0.5"),
        ("NaN", "must be a finite number >= 0, got 'NaN'"),
        (D("Infinity"), "must be a finite number >= 0, got Decimal('Infinity')"),
    ],
)
def test_as_credits_refusals(value: object, problem: str) -> None:
    """Anything but a finite number >= 0 (never a bool) is refused, named credits by default."""
    with pytest.raises(ValidationError) as info:
        as_credits(value)
    assert (info.value.field, info.value.problem) == ("credits", problem)


@pytest.mark.parametrize(
    ("value", "expected"), [(0, D(0)), (" 2.5 ", D("2.5")), (D("0.1"), D("0.1")), (0.5, D("0.5"))]
)
def test_as_credits_accepts_numbers(value: object, expected: Decimal) -> None:
    """ints, floats, numeric strings and Decimals become a Decimal."""
    assert as_credits(value) == expected


def test_spent_is_named_in_its_error() -> None:
    """A bad spent names the field spent."""
    with pytest.raises(ValidationError) as info:
        CreditBudget(10, spent="x")
    assert info.value.field == "spent"


def test_fits_is_decide_says_go() -> None:
    """fits() is True exactly when decide() is GO, for the model asked about."""
    budget = CreditBudget(1, price=1)
    assert budget.fits(M)
    budget.reserve(1, M)
    assert not budget.fits(M)
    budget.learn("cheap", D(0))
    assert not budget.fits("cheap")  # price max(1, 0): still 1
    learned = CreditBudget(10)
    learned.learn("dear", D(20))
    assert (learned.fits("dear"), learned.fits("other")) == (False, True)


def test_a_model_of_unknown_price_goes_only_below_the_limit() -> None:
    """With spend exactly at the limit, a job of unknown price stops."""
    assert CreditBudget(2, spent=2).decide(M) is STOP
    assert CreditBudget(2, spent=D("1.99")).decide(M) is GO


def test_a_held_job_of_known_price_does_not_block_unknown_models() -> None:
    """Only held jobs of unknown price keep a job of unknown price from going."""
    budget = CreditBudget(10)
    budget.learn(M, D(1))
    budget.reserve(1, M)
    budget.hold(1)
    assert budget.decide("other/model") is GO
    budget.reserve(2, "other/model")
    budget.hold(2)
    assert budget.decide("third/model") is STOP


def test_reserving_a_held_token_again_is_refused() -> None:
    """A token held (maybe charged) cannot be reserved again."""
    budget = CreditBudget(10)
    budget.reserve(1, M)
    budget.hold(1)
    with pytest.raises(ValueError, match=r"^1 is already reserved$"):
        budget.reserve(1, M)
    budget.reserve("t", M)
    with pytest.raises(ValueError, match=r"^'t' is already reserved$"):
        budget.reserve("t", M)


def test_a_free_success_teaches_a_zero_price() -> None:
    """A job that succeeded at no cost teaches price 0 (failed defaults to False)."""
    budget = CreditBudget(10)
    budget.reserve(1, M)
    budget.settle(1, D(0))
    assert budget.price_of(M) == D(0)


def test_a_paid_failure_teaches_its_price_and_a_free_one_does_not() -> None:
    """A failed job teaches its cost only when above zero."""
    budget = CreditBudget(10)
    budget.reserve(1, M)
    budget.settle(1, D(0), failed=True)
    assert budget.price_of(M) is None
    budget.reserve(2, M)
    budget.settle(2, D("0.3"), failed=True)
    assert budget.price_of(M) == D("0.3")
    assert budget.spent == D("0.3")


def test_settling_a_held_job_teaches_and_frees_it() -> None:
    """A held job that does report its cost is spent, learned and no longer reserved."""
    budget = CreditBudget(10)
    budget.reserve(1, M)
    budget.hold(1)
    budget.settle(1, D("0.7"))
    assert (budget.price_of(M), budget.reserved, budget.spent) == (D("0.7"), D(0), D("0.7"))


def test_settling_an_unknown_token_only_spends() -> None:
    """A token never reserved adds its cost to spent; with no cost, nothing."""
    budget = CreditBudget(10, price=1, spent=2)
    budget.settle("nope", D("0.5"))
    budget.settle("never", None)
    assert (budget.spent, budget.price_of(M), budget.reserved) == (D("2.5"), D(1), D(0))


def test_an_unreported_cost_adds_the_price_to_what_was_spent() -> None:
    """consumed=None adds the model's price (0 while unknown) to earlier spend."""
    budget = CreditBudget(10, spent=2)
    budget.reserve(1, M)
    budget.settle(1, None)
    assert budget.spent == D(2)
    budget.learn(M, D("0.5"))
    budget.reserve(2, M)
    budget.settle(2, None)
    assert budget.spent == D("2.5")


def test_release_and_hold_of_unknown_tokens_do_nothing() -> None:
    """Releasing or holding a token never reserved changes nothing and raises nothing."""
    budget = CreditBudget(10)
    budget.release("nope")
    budget.hold("nope")
    assert (budget.in_flight, budget.reserved, budget.decide(M)) == (0, D(0), GO)


def test_a_held_job_keeps_its_model_price() -> None:
    """A held job stays reserved at its own model's price."""
    budget = CreditBudget(10)
    budget.learn(M, D("0.5"))
    budget.reserve(1, M)
    budget.hold(1)
    assert (budget.in_flight, budget.reserved) == (0, D("0.5"))
