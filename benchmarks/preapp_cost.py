"""Request-thread CPU of the pre-app decision: what moesifwsgi, moesifasgi and moesifdjango cost per request in the
default config (samples everything, no rules: one tuple read and one identity check) and with one governance rule
that does not match (the whole pre-app decision runs: headers, early sampling, user fallback, evaluation).

Each adapter wraps a trivial app called in-process, with ``agent.capture`` replaced by a no-op, so the figure is the
request path alone (``time.thread_time``: immune to other processes, not to cache effects). Prints the median of 7
blocks of ``--requests`` calls, in microseconds per request.

    python benchmarks/preapp_cost.py wsgi default          # or: asgi|django  default|rules
    PYTHONPATH=<old>/moesif_core/src:<old>/moesifwsgi/src python benchmarks/preapp_cost.py wsgi rules   # a checkout

Run each case more than once (and old against new alternately) on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from typing import Any, Callable, Dict, List

SETTINGS = {"APPLICATION_ID": "bench", "BASE_URI": "http://127.0.0.1:9", "EVENT_BATCH_TIMEOUT": 60}
BLOCKS = 7


def prepare(agent: Any, rules: bool) -> None:
    """Capture nothing; wait for the agent's first config fetch (it would undo the state set here); set the rule."""
    from moesif_core.appconfig import AppConfig, parse_rules

    agent.capture = lambda raw: True
    known = getattr(agent.remote, "_known", None)
    if known is not None:
        known.wait(10)
    if rules:
        rule = {
            "_id": "r",
            "type": "regex",
            "block": True,
            "applied_to": "matching",
            "regex_config": [{"conditions": [{"path": "request.route", "value": "^/nomatch"}]}],
            "response": {"status": 403},
        }
        agent.remote._state = (AppConfig(), parse_rules([rule]))


def median_us(run_block: Callable[[], None], n: int) -> float:
    out: List[float] = []
    for _ in range(BLOCKS):
        t0 = time.thread_time()
        run_block()
        out.append((time.thread_time() - t0) / n * 1e6)
    return statistics.median(out)


def wsgi(rules: bool, n: int) -> float:
    from moesifwsgi import MoesifMiddleware

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    mw = MoesifMiddleware(app, SETTINGS)
    prepare(mw.agent, rules)
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/items/1",
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_HOST": "h",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
        "wsgi.input": io.BytesIO(b""),
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def block() -> None:
        for _ in range(n):
            result = mw(dict(base), start_response)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return median_us(block, n)


def asgi(rules: bool, n: int) -> float:
    from moesifasgi import MoesifMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = MoesifMiddleware(app, settings=SETTINGS)
    prepare(mw.agent, rules)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "query_string": b"a=1",
        "scheme": "http",
        "server": ("h", 80),
        "client": ("10.0.0.1", 5000),
        "headers": [(b"host", b"h"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    }

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def many() -> None:
        for _ in range(n):
            await mw(scope, receive, send)

    loop = asyncio.new_event_loop()
    return median_us(lambda: loop.run_until_complete(many()), n)


def django(rules: bool, n: int) -> float:
    import django as dj
    from django.conf import settings

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], MOESIF_MIDDLEWARE=dict(SETTINGS), ROOT_URLCONF=__name__, INSTALLED_APPS=[]
    )
    dj.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory

    from moesifdjango.middleware import moesif_middleware

    mw = moesif_middleware(lambda request: HttpResponse(b"ok", content_type="text/plain"))
    prepare(mw.agent, rules)
    factory = RequestFactory()

    def block() -> None:
        for _ in range(n):
            mw(factory.get("/items/1", {"a": "1"}, HTTP_USER_AGENT="bench"))

    return median_us(block, n)


urlpatterns: List[Any] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", choices=["wsgi", "asgi", "django"])
    parser.add_argument("config", choices=["default", "rules"])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    fn = {"wsgi": wsgi, "asgi": asgi, "django": django}[args.adapter]
    print(f"{args.adapter} {args.config} {fn(args.config == 'rules', args.requests):.2f} us/request")


if __name__ == "__main__":
    main()
