"""Side-by-side benchmarks: the shared poller against what users would write instead.

Run them with ``make bench`` (or ``python -m benchmarks``); ``python -m benchmarks --smoke``
is the few-second version the test suite runs. The fake API runs in its own process, each
client variant in another (``python -m benchmarks.run_variant``), so every figure is the
client's alone. Results land in ``benchmarks/results/``.
"""

from __future__ import annotations
