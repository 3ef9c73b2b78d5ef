"""The iterable handed back to the server in place of the app's.

It iterates the app's iterable lazily, so each chunk goes on as soon as it is produced (streams stay streams), tees
the chunks into the response :class:`BodyTap` (which keeps at most the cap), always forwards ``close()`` to the
app's iterable, and ends the call (response time, callbacks, event) after the last chunk or at ``close()``,
whichever comes first. An exception from the app's iterable ends the call as a 500 and propagates unchanged.
Nothing else of the app's iterable is exposed: a server must not reach around the tee (``read``/``fileno``).

A wrapper dropped without ``close()`` and before its last chunk (a test client that only looked at the status, a
server that lost the connection and forgot to close) still records its call, once: when it is collected, its
``__del__`` hands the call to the agent, which finishes it in a worker thread with what was seen so far. The
``__del__`` does nothing else (no callbacks, no lock, no I/O): it may run in any thread, at any point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    from .middleware import Call


class ClosingResponse:
    __slots__ = ("_result", "_call")

    def __init__(self, result: Iterable[bytes], call: Call) -> None:
        self._result = result
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        tap = call.response_tap
        try:
            if tap is None:
                yield from self._result
            else:
                feed = tap.feed
                for chunk in self._result:
                    feed(chunk)
                    yield chunk
        except Exception:  # (GeneratorExit, when the server stops early, is not caught: close() ends the call)
            call.finish(failed=True)
            raise
        call.finish()

    def __del__(self) -> None:
        try:
            call = self._call
            if not call.done:
                call.mw.agent.defer(call.finish_abandoned)
        except Exception:  # noqa: BLE001 - no logging in __del__ (its locks); at exit the modules may be gone
            pass

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        try:
            if close is not None:
                close()
        except Exception:
            self._call.finish(failed=True)
            raise
        finally:
            self._call.finish()
