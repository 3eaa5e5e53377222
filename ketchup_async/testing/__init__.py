"""Test doubles for the Ketchup API: an in-process fake server with fault injection.

Example::

    from ketchup_async.testing import FakeKetchupServer, Faults

    async with FakeKetchupServer(api_keys=("dk-test",), time_scale=0.01) as server:
        ...  # point a client at server.base_url
        assert server.ledger.audit(reports) == []  # every task created was reported
"""

from __future__ import annotations

from ._cli import add_arguments as add_server_arguments
from ._cli import run as run_server
from ._ledger import FakeLedger, LedgerEntry, Report
from ._png import make_png
from ._server import FakeKetchupServer
from ._state import FakeTask, Faults
from ._stats import FakeStats

__all__ = [
    "FakeKetchupServer",
    "FakeLedger",
    "FakeStats",
    "FakeTask",
    "Faults",
    "LedgerEntry",
    "Report",
    "add_server_arguments",
    "make_png",
    "run_server",
]
