"""The ``request`` and ``response`` handed to the callbacks: Starlette objects, as in the original.

They are built only when some callback is set, after the response has been sent (or the call ended otherwise),
from the same ``scope`` the app saw, so ``request.state``, ``request.path_params``, ``request.url`` and
``request.headers`` show what the app and its router put there.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from moesif_core import BodyTap


def callback_request(scope: Scope, body: Optional[BodyTap]) -> Request:
    """A :class:`starlette.requests.Request` over ``scope``.

    ``await request.body()`` (``.json()``, ``.form()``) gives the request body as the app read it and the middleware
    captured it: at most ``MAX_BODY_SIZE`` bytes, and empty when ``LOG_BODY`` is False or the app never read it.
    """
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body.data() if body is not None else b"", "more_body": False}

    return Request(scope, replay)


class CallbackResponse(Response):
    """The response as it was sent, for the callbacks.

    ``status_code`` and ``headers`` are what the client got (``headers`` includes ``x-moesif-transaction-id``).
    ``body`` holds the response body as captured: the first ``MAX_BODY_SIZE`` bytes of what the app sent (all of
    it for ordinary responses; the start of a long stream), and ``b""`` when ``LOG_BODY`` is False, for ``HEAD``,
    or when no response was sent. It has been sent already: changing it changes nothing, and it cannot be sent
    again.
    """

    def __init__(self, status_code: int, raw_headers: Sequence[Tuple[bytes, bytes]], body: Optional[BodyTap]) -> None:
        # Deliberately not Response.__init__: nothing is rendered, no Content-Length is computed.
        self.status_code = status_code
        self.raw_headers = cast(List[Tuple[bytes, bytes]], raw_headers)
        self.background = None
        self._tap = body
        self._body: Optional[bytes] = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = self._tap.data() if self._tap is not None else b""
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("moesifasgi: this response describes one already sent; it cannot be sent again")

    def __repr__(self) -> str:
        return f"<CallbackResponse status_code={self.status_code}>"
