"""The submit controller on a fake clock: slow start, pause and cut, recovery, the ceiling."""

from __future__ import annotations

import math

from ketchup_async._submit_rate import SubmitController


def send_all(controller: SubmitController, now: float) -> int:
    """Send while the controller allows it at ``now``; return how many left."""
    sent = 0
    while controller.delay(now) == 0:
        controller.on_send(now)
        sent += 1
    return sent


def test_slow_start_limits_submits_on_the_wire_before_any_refusal() -> None:
    """Before a refusal, the window caps submits in flight and grows by one per acceptance."""
    controller = SubmitController(initial_window=8)
    assert send_all(controller, 0.0) == 8
    assert math.isinf(controller.delay(0.0))  # wait for an answer, not for a time
    for _ in range(8):
        controller.on_accepted(0.01)
    assert send_all(controller, 0.01) == 16  # doubled in one round trip


def test_a_refusal_pauses_every_submit_for_retry_after() -> None:
    """A 429 with Retry-After 2 holds every submit for 2 s."""
    controller = SubmitController()
    send_all(controller, 0.0)
    controller.on_accepted(0.1)
    controller.on_refused(0.1, 2.0)
    assert controller.delay(0.1) == 2.0
    assert controller.delay(1.0) == 1.1
    assert controller.delay(2.1) == 0.0


def test_a_refusal_cuts_the_rate_to_what_the_server_accepted() -> None:
    """After a 429 the rate is at most what was accepted over the last second."""
    controller = SubmitController()
    send_all(controller, 0.0)
    for i in range(5):
        controller.on_accepted(0.5 + i * 0.01)
    controller.on_refused(0.6, 1.0)
    assert controller.rate(0.6) == 5.0
    # Submits leave 1/5 s apart once the pause is over.
    controller.on_send(1.6)
    assert abs(controller.delay(1.6) - 0.2) < 1e-9


def test_a_refusal_storm_from_one_burst_cuts_once() -> None:
    """Refusals of submits already in flight are one signal, not one cut each."""
    controller = SubmitController()
    send_all(controller, 0.0)
    for i in range(5):
        controller.on_accepted(0.5 + i * 0.01)
    controller.on_refused(0.6, 1.0)
    controller.on_refused(0.6, 1.0)
    controller.on_refused(0.61, 1.0)
    assert controller.rate(0.61) == 5.0


def test_recovery_is_additive_while_submits_are_accepted() -> None:
    """After a cut to r0, the rate grows by recovery * r0 per second of accepted submits."""
    controller = SubmitController(recovery=0.2)
    send_all(controller, 0.0)
    for i in range(10):
        controller.on_accepted(0.5 + i * 0.01)
    controller.on_refused(0.6, 1.0)
    r0 = controller.rate(0.6)
    assert r0 == 10.0
    now = 1.6
    for _ in range(10):  # one second of submits at about r0
        controller.on_send(now)
        controller.on_accepted(now)
        now += 0.1
    assert 11.5 < controller.rate(now) < 12.5  # + 0.2 * 10 per second, give or take


def test_no_recovery_while_idle() -> None:
    """Without accepted submits the additive part does not grow."""
    controller = SubmitController(recovery=0.2)
    send_all(controller, 0.0)
    for i in range(10):
        controller.on_accepted(0.5 + i * 0.01)
    controller.on_refused(0.6, 1.0)
    assert controller.rate(3.0) == 10.0


def test_a_bare_503_backs_off_exponentially() -> None:
    """Refusals without Retry-After pause for base * 2**n, capped."""
    controller = SubmitController(base=0.5, cap=3.0)
    send_all(controller, 0.0)
    pauses = []
    now = 0.0
    for _ in range(4):
        controller.on_send(now)
        controller.on_refused(now, None)
        pauses.append(controller.delay(now))
        now += 10.0
    assert pauses[:3] == [0.5, 1.0, 2.0]
    assert pauses[3] == 3.0


def test_retry_after_is_capped() -> None:
    """A huge Retry-After is honoured up to retry_after_cap."""
    controller = SubmitController(retry_after_cap=5.0)
    controller.on_send(0.0)
    controller.on_refused(0.0, 3600.0)
    assert controller.delay(0.0) == 5.0


def test_an_explicit_rate_is_a_hard_ceiling() -> None:
    """submit_rate=2 spaces submits 0.5 s apart, before and after any refusal."""
    controller = SubmitController(2.0)
    controller.on_send(0.0)
    assert controller.delay(0.0) == 0.5
    controller.on_accepted(0.1)
    assert controller.delay(0.5) == 0.0
    for i in range(200):  # recovery never lifts it past the ceiling
        controller.on_send(1.0 + i)
        controller.on_accepted(1.0 + i)
    assert controller.rate(300.0) == 2.0


def test_full_recovery_returns_to_slow_start() -> None:
    """Once recovered to the budget, the controller is unlimited again (window only)."""
    controller = SubmitController(4.0)
    send_all(controller, 0.0)
    controller.on_accepted(0.1)
    controller.on_accepted(0.1)
    controller.on_refused(0.1, 1.0)
    assert controller.rate(0.1) == 2.0
    now = 1.1
    while controller.rate(now) < 4.0 and now < 100:
        controller.on_send(now)
        controller.on_accepted(now)
        now += 0.25
    assert controller.rate(now) == 4.0
    assert controller.window is not None


def test_a_short_retry_after_sets_the_counting_window() -> None:
    """A server asking to retry within 0.1 s counts its limit per 0.1 s, not per second."""
    controller = SubmitController()
    send_all(controller, 0.0)
    for i in range(5):
        controller.on_accepted(0.05 + i * 0.01)
    controller.on_refused(0.1, 0.1)
    assert controller.rate(0.1) == 50.0


def test_the_cut_keeps_most_of_what_the_server_accepted() -> None:
    """A refusal after a long run at 10/s keeps about 70% of 10/s or more, not half."""
    controller = SubmitController()
    controller.on_send(0.0)
    controller.on_refused(0.0, 1.0)  # the first storm: rate = what was accepted (nothing yet)
    now = 1.0
    for _ in range(300):
        controller.on_send(now)
        controller.on_accepted(now)
        now += 0.1
    controller.on_refused(now, 1.0)
    assert 6.0 <= controller.rate(now) <= 10.0  # 70% of the 9 or 10 counted in the window
