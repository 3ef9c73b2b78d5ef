"""Byte-identical responses with and without the middleware, over many generated requests and app behaviours.

Two levels: direct WSGI calls (what the app reads, the chunks one by one, status, headers, ``close()``), and real
HTTP through werkzeug's server (every byte on the wire but the ``Date`` and ``X-Moesif-Transaction-Id`` lines).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsgi_support import Captured, StartResponse, environ_for, raw_request, serve

from moesifwsgi import MoesifMiddleware


@dataclass
class Plan:
    method: str
    body: bytes
    read_style: str
    read_limit: int
    read_n: int
    status: str
    headers: List[Tuple[str, str]]
    write_first: Optional[bytes]
    chunks: List[bytes]
    kind: str
    lazy_start: bool


class Closing:
    def __init__(self, it: Iterator[bytes], log: Dict[str, Any]) -> None:
        self.it = it
        self.log = log

    def __iter__(self) -> Iterator[bytes]:
        return self.it

    def close(self) -> None:
        self.log["closed"] = self.log.get("closed", 0) + 1


def read_body(stream: Any, style: str, limit: int, n: int) -> bytes:
    got = b""
    if style == "none":
        return got
    if style == "all":
        return bytes(stream.read())
    if style == "iter":
        return b"".join(stream)
    if style == "readlines":
        return b"".join(stream.readlines())
    while len(got) < limit:
        want = min(n, limit - len(got))
        if style == "read_n":
            data = stream.read(want)
        elif style == "readline":
            data = stream.readline(want)
        else:  # readinto
            buf = bytearray(want)
            k = stream.readinto(buf)
            data = bytes(buf[: k or 0])
        if not data:
            break
        got += data
    return got


def plan_app(plan: Plan, log: Dict[str, Any]) -> Any:
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        log["read"] = read_body(environ["wsgi.input"], plan.read_style, plan.read_limit, plan.read_n)

        def start() -> None:
            write = start_response(plan.status, list(plan.headers))
            if plan.write_first is not None:
                write(plan.write_first)

        def gen() -> Iterator[bytes]:
            if plan.lazy_start:
                start()
            yield from plan.chunks

        if plan.kind in ("generator", "closing"):
            if not plan.lazy_start:
                start()
            return gen() if plan.kind == "generator" else Closing(gen(), log)
        start()
        if plan.kind == "list":
            return list(plan.chunks)
        if plan.kind == "tuple":
            return tuple(plan.chunks)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"".join(plan.chunks)), 7)

    return app


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20)
plans = st.builds(
    Plan,
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]),
    body=st.binary(max_size=3000),
    read_style=st.sampled_from(["none", "all", "iter", "readlines", "read_n", "readline", "readinto"]),
    read_limit=st.integers(0, 3000),
    read_n=st.integers(1, 700),
    status=st.sampled_from(
        [
            "200 OK",
            "201 Created",
            "204 No Content",
            "302 Found",
            "404 Not Found",
            "500 Internal Server Error",
            "299 Custom Thing",
        ]
    ),
    headers=st.lists(st.tuples(st.from_regex(r"\AX-[A-Za-z0-9-]{1,12}\Z"), header_text), max_size=5),
    write_first=st.none() | st.binary(max_size=50),
    chunks=st.lists(st.binary(max_size=800), max_size=6),
    kind=st.sampled_from(["list", "tuple", "generator", "closing", "file_wrapper"]),
    lazy_start=st.booleans(),
)


@pytest.fixture(scope="module")
def middlewares() -> Iterator[Dict[int, Tuple[MoesifMiddleware, Captured, List[Any]]]]:
    """One middleware per body cap, each around a dispatcher whose app the test sets per example."""
    out: Dict[int, Tuple[MoesifMiddleware, Captured, List[Any]]] = {}
    for cap in (0, 100, 1 << 20):
        current: List[Any] = [None]
        mw = MoesifMiddleware(
            lambda environ, sr, current=current: current[0](environ, sr),
            {"APPLICATION_ID": "t", "BASE_URI": "http://127.0.0.1:9", "MAX_BODY_SIZE": cap},
        )
        out[cap] = (mw, Captured(mw), current)
    yield out
    for mw, _, _ in out.values():
        mw.shutdown(0)


def run_once(wsgi: Any, plan: Plan, log: Dict[str, Any]) -> Tuple[List[Any], List[bytes], List[bytes]]:
    from wsgiref.util import FileWrapper

    env = environ_for(plan.method, "/p", body=plan.body, **{"wsgi.file_wrapper": FileWrapper})
    sr = StartResponse()
    result = wsgi(env, sr)
    chunks = []
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        if hasattr(result, "close"):
            result.close()
    calls = [(status, [h for h in headers if h[0] != "X-Moesif-Transaction-Id"]) for status, headers, _ in sr.calls]
    return calls, sr.written, chunks


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(plan=plans, cap=st.sampled_from([0, 100, 1 << 20]))
def test_wsgi_level_identical(middlewares: Dict[int, Any], plan: Plan, cap: int) -> None:
    mw, captured, current = middlewares[cap]
    bare_log: Dict[str, Any] = {}
    wrapped_log: Dict[str, Any] = {}
    bare = run_once(plan_app(plan, bare_log), plan, bare_log)
    current[0] = plan_app(plan, wrapped_log)
    captured.raws.clear()
    wrapped = run_once(mw, plan, wrapped_log)
    assert wrapped == bare  # same start_response calls, same write() data, same chunks, one by one
    assert wrapped_log == bare_log  # the app read the same bytes; close() was called as often
    assert len(captured.raws) == 1
    raw = captured.raws[0]
    sent = b"".join(bare[1]) + b"".join(bare[2])
    if plan.method == "HEAD":
        assert raw.response_body is None
    else:
        assert raw.response_body.data() == sent[:cap] and raw.response_body.total == len(sent)
    if plan.body:
        expected = bare_log["read"]
        if len(plan.body) <= cap:
            expected = plan.body  # what the app left unread was read at the end
        assert raw.request_body.data() == expected[:cap]
        assert raw.request_body.total == len(plan.body)
    event = mw.agent.builder.build(raw)
    assert event is not None and event["response"]["status"] == int(plan.status[:3])


# -- on the wire ---------------------------------------------------------------------------------------------------


def echo_app(environ: Dict[str, Any], start_response: Any) -> Any:
    """Answers from what the request says: status, headers, chunks and how to read the body come in X-Plan."""
    spec = json.loads(environ.get("HTTP_X_PLAN", "{}"))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    read = read_body(stream, spec.get("read", "read_n"), min(spec.get("limit", length), length), spec.get("n", 100))
    headers = [(k, v) for k, v in spec.get("headers", [])]
    headers.append(("X-Read", str(len(read))))
    headers.append(("X-Path", environ.get("PATH_INFO", "").encode("latin-1").hex()))
    headers.append(("X-Query", environ.get("QUERY_STRING", "")))
    chunks = [read] + [c.encode("latin-1") for c in spec.get("chunks", [])]
    if spec.get("length"):
        headers.append(("Content-Length", str(sum(len(c) for c in chunks))))
    start_response(spec.get("status", "200 OK"), headers)
    if spec.get("gen"):
        return (c for c in chunks)
    return chunks


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[int, int, MoesifMiddleware]]:
    from moesif_collector import Collector

    with Collector(db_path=str(tmp_path_factory.mktemp("c") / "c.db")) as collector:
        mw = MoesifMiddleware(echo_app, {"APPLICATION_ID": "t", "BASE_URI": collector.url, "MAX_BODY_SIZE": 500})
        with serve(echo_app) as bare, serve(mw) as wrapped:
            yield bare.port, wrapped.port, mw
        mw.shutdown(2)


_NORMALISE = re.compile(rb"\r\n(Date|X-Moesif-Transaction-Id): [^\r]*")

path_chars = st.sampled_from([*"abcXYZ019-._~/:@!$&'()*+,;=", "%20", "%25", "%2F", "%E9", "%C3%A9", "%FF", "%00"])
query_chars = st.sampled_from([*"abc=&+-._~/?:@!$'()*,;", "%20", "%E9", "%C3%A9", "%3D"])
latin1_value = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"), min_size=1, max_size=15
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH"]),
    path=st.lists(path_chars, max_size=12).map("".join),
    query=st.lists(query_chars, max_size=10).map("".join),
    headers=st.lists(st.tuples(st.from_regex(r"\AX-[A-Za-z0-9]{1,10}\Z"), latin1_value), max_size=4),
    body=st.binary(max_size=2000),
    read=st.sampled_from(["none", "read_n", "readline", "readinto", "all"]),
    limit=st.integers(0, 2000),
    status=st.sampled_from(["200 OK", "201 Created", "404 Not Found", "418 I'm a teapot", "500 Internal Server Error"]),
    out_headers=st.lists(st.tuples(st.from_regex(r"\AX-[A-Za-z]{1,8}\Z"), latin1_value), max_size=3),
    chunks=st.lists(st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=300), max_size=4),
    gen=st.booleans(),
    length=st.booleans(),
)
def test_wire_level_identical(
    two_servers: Tuple[int, int, MoesifMiddleware],
    method: str,
    path: str,
    query: str,
    headers: List[Tuple[str, str]],
    body: bytes,
    read: str,
    limit: int,
    status: str,
    out_headers: List[Tuple[str, str]],
    chunks: List[str],
    gen: bool,
    length: bool,
) -> None:
    bare_port, wrapped_port, _ = two_servers
    if read == "all":
        read, limit = "read_n", len(body)  # never read past Content-Length on a raw socket
    plan = {
        "read": read,
        "limit": limit,
        "n": 333,
        "status": status,
        "headers": out_headers,
        "chunks": chunks,
        "gen": gen,
        "length": length,
    }
    target = "/" + path + ("?" + query if query else "")
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",
        "X-Plan: " + json.dumps(plan, ensure_ascii=True),
    ]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    request = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body
    got_bare = raw_request(bare_port, request)
    got_wrapped = raw_request(wrapped_port, request)
    assert b"\r\nX-Moesif-Transaction-Id: " in got_wrapped.partition(b"\r\n\r\n")[0]
    assert _NORMALISE.sub(b"", got_wrapped) == _NORMALISE.sub(b"", got_bare)
