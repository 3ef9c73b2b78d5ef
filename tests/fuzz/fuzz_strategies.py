"""What the deep fuzz session generates, per target (the adapters' requests come from ``rel_fuzz``)."""

from __future__ import annotations

import json
from typing import Any

from fuzz_checks import IngestReq, OutReq, PageReq
from hypothesis import strategies as st

#: Strings that broke something once, or could: escapes for terminals, lone surrogates, C1, RTL, NUL, long runs.
HOSTILE_TEXT = [
    "\x1b]0;title\x07\x1b[2J\x1b]8;;http://evil/\x07",
    "\ud800",
    "a\udfffb",
    "\x85\x9b31m",
    "\u202egnp.exe",
    "\x00",
    "<script>alert(1)</script>",
    "'; DROP TABLE events; --",
    "%_\\",
    "9" * 40,
    "x" * 5000,
]
HOSTILE_NUMBERS: list[Any] = [2**63, 2**64, -(2**63) - 1, 10**30, 1e308, -0.0, 0.1, 1e-320]

texts = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_TEXT))
numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(HOSTILE_NUMBERS))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
times = st.one_of(
    st.just("2026-12-02T08:00:00.000"),
    st.sampled_from(["0001-01-01T00:00+23:59", "9999-12-31T23:59:59.999-23:59", "2026-02-30T00:00", "now"]),
    texts,
)


def _event(uri: Any, verb: Any, t0: Any, t1: Any, status: Any, user: Any, company: Any, meta: Any, body: Any) -> Any:
    return {
        "request": {"time": t0, "uri": uri, "verb": verb, "headers": {"X-Odd": user}, "body": body},
        "response": {"time": t1, "status": status, "headers": {}, "body": meta},
        "user_id": user,
        "company_id": company,
        "metadata": meta,
        "direction": "Incoming",
    }


events = st.builds(
    _event,
    uri=st.one_of(st.just("http://h/items/1?x=1"), texts.map(lambda s: "http://h/" + s), json_values),
    verb=st.one_of(st.sampled_from(["GET", "POST", "get"]), texts, json_values),
    t0=times,
    t1=times,
    status=st.one_of(st.sampled_from([200, 404, 500, 0, 999, 1000, -1]), numbers, json_values),
    user=st.one_of(st.none(), texts, numbers),
    company=st.one_of(st.none(), texts, numbers),
    meta=json_values,
    body=json_values,
)
#: Events a client could really send (no surrogates, finite numbers, sane required fields): these are stored, so the
#: check goes on to the page's view of them. Control characters, odd Unicode and deep JSON still come through.
safe_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
plausible_events = st.builds(
    _event,
    uri=st.text(max_size=40).map(lambda s: "http://h/" + s),
    verb=st.sampled_from(["GET", "POST", "DELETE", "get", "M\x1b[2J"]),
    t0=times.filter(bool),
    t1=times,
    status=st.one_of(st.integers(0, 999), st.none()),
    user=st.one_of(st.none(), st.text(max_size=20), st.integers()),
    company=st.one_of(st.none(), st.text(max_size=20)),
    meta=safe_values,
    body=safe_values,
)
profiles = st.fixed_dictionaries(
    {"user_id": st.one_of(texts, numbers), "company_id": st.one_of(texts, numbers), "subscription_id": texts},
    optional={"metadata": json_values},
)


def _mostly(usual: list[Any], odd: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``usual`` about 9 times in 10, else one of ``odd``. (``sampled_from`` alone favours the ends of its
    list whatever the repetitions, so the odd ones sit in the middle of a long list.)"""
    half = usual * 20
    return st.sampled_from(half + odd + half)


@st.composite
def payloads(draw: Any) -> bytes:
    """A JSON document (events, profiles or anything), serialised in one of the ways a sender might."""
    kind = draw(_mostly(["plausible"], ["events", "event", "profile", "profiles", "any", "bytes", "nan"] * 3))
    if kind == "bytes":
        return bytes(draw(st.binary(max_size=200)))
    doc: Any = {
        "plausible": st.one_of(plausible_events, st.lists(plausible_events, min_size=1, max_size=3)),
        "events": st.lists(events, min_size=1, max_size=3),
        "event": events,
        "profile": profiles,
        "profiles": st.lists(profiles, min_size=1, max_size=3),
        "any": json_values,
        "nan": st.just({"request": {"time": "t", "uri": "u", "verb": "GET"}, "metadata": float("nan")}),
    }[kind]
    value = draw(doc)
    ascii_only = draw(st.booleans())
    text = json.dumps(value, ensure_ascii=ascii_only)
    if kind == "nan":
        text = text.replace("NaN", draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])))
    return text.encode("utf-8", "surrogatepass")


INGEST_PATHS = [
    "/v1/events",
    "/v1/events/batch",
    "/v1/users",
    "/v1/users/batch",
    "/v1/companies",
    "/v1/companies/batch",
    "/v1/subscriptions",
    "/v1/subscriptions/batch",
    "/v1/config",
    "/v1/rules",
]
CHUNK_LINES = ["-1", "+a", "0x10", "1_0", "ffffffffffffffffff", " 5", "5;ext=1", "", "zz", "0", "00000001"]

# Each part mostly as a client sends it, sometimes not: about a third of the requests store events, so the check
# goes on to the page's view of them; the rest explore the refusals.
ingest_requests = st.builds(
    IngestReq,
    path=_mostly(["/v1/events", "/v1/events/batch"], [*INGEST_PATHS, "/v1/", "/v1/events/", "/v1/x/batch", "/v1/%00"]),
    method=_mostly(["POST"], ["GET", "PUT", "OPTIONS", "DELETE"]),
    app_id=_mostly(["fuzz-app"], [None, "", " ", "\x7f\xff"]),
    content_type=_mostly(
        [None, "application/json", "application/json; charset=utf-8", "application/x+json"], ["text/plain", "\xe9/\xff"]
    ),
    encoding=_mostly(["identity", "gzip", "deflate"], ["br", "gzip, gzip", "x-gzip"]),
    framing=_mostly(["length", "chunked"], CHUNK_LINES),
    body=payloads(),
)

out_requests = st.builds(
    OutReq,
    client=st.sampled_from(["requests", "httpx"]),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.binary(max_size=30),
    # requests and httpx refuse a header value with leading or trailing whitespace themselves
    odd=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip),
    body=st.one_of(st.binary(max_size=300), payloads()),
    status=st.sampled_from([200, 201, 204, 301, 304, 400, 401, 404, 418, 429, 500, 503]),
    content_type=st.sampled_from(["application/json", "text/plain; charset=utf-8", "application/octet-stream"]),
    reply=st.one_of(st.binary(max_size=300), payloads()),
)

PAGE_PATHS = [
    "/api/calls",
    "/api/stats",
    "/api/routes",
    "/api/timeseries",
    "/api/users",
    "/api/companies",
    "/api/config",
]
PAGE_KEYS = [
    "path", "status", "user", "company", "user_id", "company_id", "route", "verb", "limit", "offset", "after_id",
    "before_id", "routes", "order", "sort", "dir", "window", "from", "to",
]  # fmt: skip
page_values = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.integers().map(str),
    st.sampled_from(["2xx", "5xx", "asc", "desc", "calls", "p95", "1h", "24h", "2026-12-02T08:00:00Z", "-1", "1e9"]),
)
page_requests = st.builds(
    PageReq,
    path=st.one_of(
        st.sampled_from(PAGE_PATHS),
        st.one_of(st.integers(), st.text(st.characters(exclude_categories=("Cs",)), max_size=25)).map(
            lambda x: f"/api/calls/{x}"
        ),
    ),
    params=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(PAGE_KEYS), st.text(st.characters(exclude_categories=("Cs",)), max_size=5)),
            page_values,
        ),
        max_size=5,
    ),
)
