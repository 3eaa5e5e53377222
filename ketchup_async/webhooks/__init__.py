"""Receive the API's callbacks (webhooks) in an async web backend.

A job submitted with a ``callback_url`` is resolved the moment its callback arrives; the
client's poller keeps only a late safety-net schedule for it, so a lost callback still
resolves. The API does not sign callbacks, so the URL carries a secret path token::

    client = KetchupClient()
    receiver = WebhookReceiver(client)           # a fresh 256-bit token
    receiver.add_to(app)                         # aiohttp: POST /ketchup/callback/{token}
    job = await client.submit("a red bicycle", callback_url=receiver.callback_url(BASE))

For FastAPI/Starlette (or anything else), ``await receiver.handle_stream(token,
request.stream())`` (the token, then the body read with a cap and a deadline) and answer with
the status and JSON it returns.

Modules: ``_receiver`` (the receiver and its aiohttp route), ``_parse`` (capped body reads;
parsing is ``ketchup_async._callback``'s), ``_tokens`` (secret path tokens and their redaction
in logs), ``_refusals`` (rate-limited warnings for refused callbacks), ``_relay`` (callbacks
handed between the workers of one backend over Redis).
"""

from __future__ import annotations

from ._parse import MAX_CALLBACK_BYTES, parse_callback, read_body
from ._receiver import DEFAULT_PATH, WebhookReceiver, WebhookStats
from ._relay import RedisRelay, RelayStats
from ._tokens import MIN_TOKEN_CHARS, new_token

__all__ = [
    "DEFAULT_PATH",
    "MAX_CALLBACK_BYTES",
    "MIN_TOKEN_CHARS",
    "RedisRelay",
    "RelayStats",
    "WebhookReceiver",
    "WebhookStats",
    "new_token",
    "parse_callback",
    "read_body",
]
