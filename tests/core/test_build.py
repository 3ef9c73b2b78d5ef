"""RawCapture -> wire JSON, field by field against docs/wire.md."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moesif_core import TRUNCATED_METADATA_KEY, BodyTap, EventBuilder, EventModel, RawCapture, Settings
from moesif_core.capture import FROZEN_FIELDS
from moesif_core.timeutil import format_time

WIRE_KEYS = {
    "request",
    "response",
    "user_id",
    "company_id",
    "session_token",
    "tags",
    "metadata",
    "direction",
    "weight",
    "blocked_by",
    "transaction_id",
}
REQUEST_KEYS = {"time", "uri", "verb", "api_version", "ip_address", "headers", "body", "transfer_encoding"}
RESPONSE_KEYS = {"time", "status", "ip_address", "headers", "body", "transfer_encoding"}


def tap(data: bytes, limit: int = 1 << 20) -> BodyTap:
    t = BodyTap(limit)
    t.feed(data)
    return t


def builder(**kw: object) -> EventBuilder:
    return EventBuilder(Settings.from_mapping({"APPLICATION_ID": "app", **kw}))


def raw(**kw: object) -> RawCapture:
    base: dict[str, object] = dict(
        method="POST",
        uri="http://localhost/echo?a=1&b=two",
        request_time=1764111706.0094,
        response_time=1764111706.0205,
        response_status=200,
    )
    base.update(kw)
    return RawCapture(**base)  # type: ignore[arg-type]


def test_full_event_shape() -> None:
    ev = builder().build(
        raw(
            request_headers=[
                ("CONTENT_TYPE", "application/json"),
                ("HTTP_HOST", "localhost"),
                ("HTTP_X_CASE", "a"),
                ("wsgi.input", "ignored"),
                ("REMOTE_ADDR", "ignored"),
            ],
            wsgi_headers=True,
            request_body=tap(b'{"name": "x", "password": "secret"}'),
            response_headers=[("Content-Type", "application/json")],
            response_body=tap(b'{"len": 63}'),
            peer_ip="192.0.2.10",
            metadata={"case": "post_json"},
            transaction_id="825e1f89-4a88-4820-99ac-d541cefb8e04",
        )
    )
    assert ev is not None
    assert set(ev) == WIRE_KEYS
    assert set(ev["request"]) == REQUEST_KEYS and set(ev["response"]) == RESPONSE_KEYS
    req, resp = ev["request"], ev["response"]
    assert req["time"] == "2025-11-25T23:01:46.009"
    assert resp["time"] == "2025-11-25T23:01:46.020"
    assert req["uri"] == "http://localhost/echo?a=1&b=two" and req["verb"] == "POST"
    assert req["headers"] == {
        "Content-Type": "application/json",
        "Host": "localhost",
        "X-Case": "a",
        "X-Moesif-Transaction-Id": "825e1f89-4a88-4820-99ac-d541cefb8e04",
    }
    assert req["body"] == {"name": "x", "password": "secret"} and req["transfer_encoding"] == "json"
    assert req["ip_address"] == "192.0.2.10"
    assert resp["status"] == 200 and resp["body"] == {"len": 63} and resp["transfer_encoding"] == "json"
    assert resp["ip_address"] is None
    assert ev["transaction_id"] == req["headers"]["X-Moesif-Transaction-Id"]
    assert ev["direction"] == "Incoming" and ev["weight"] == 1 and ev["metadata"] == {"case": "post_json"}
    assert ev["user_id"] is None and ev["blocked_by"] is None and ev["tags"] is None
    json.dumps(ev)


def test_times_do_not_depend_on_the_machine_timezone() -> None:
    code = "from moesif_core.timeutil import format_time; print(format_time(1764111706.0094))"
    outs = set()
    for tz in ("UTC", "Asia/Kolkata", "America/St_Johns", "Nowhere/Missing"):
        env = dict(os.environ, TZ=tz)
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    assert outs == {"2025-11-25T23:01:46.009"}
    assert format_time(0.9999) == "1970-01-01T00:00:00.999"


def test_form_and_binary_bodies_go_base64() -> None:
    ev = builder().build(raw(request_body=tap(b"a=1&b=2"), response_body=tap(b"\xff\x00\xfe")))
    assert ev is not None
    assert ev["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(ev["request"]["body"]) == b"a=1&b=2"
    assert base64.b64decode(ev["response"]["body"]) == b"\xff\x00\xfe"


def test_no_body_is_null() -> None:
    ev = builder().build(raw(method="GET"))
    assert ev is not None
    assert ev["request"]["body"] is None and ev["request"]["transfer_encoding"] is None
    assert ev["response"]["body"] is None


def test_over_cap_body_is_truncated_base64_and_marked() -> None:
    big = b'{"k": "' + b"v" * 5000 + b'"}'
    ev = builder().build(raw(request_body=tap(big, limit=100)))
    assert ev is not None
    assert ev["request"]["transfer_encoding"] == "base64"
    assert base64.b64decode(ev["request"]["body"]) == big[:100]
    assert ev["metadata"] == {TRUNCATED_METADATA_KEY: {"request": len(big)}}


def test_log_body_false_sends_no_bodies() -> None:
    ev = builder().build(raw(request_body=tap(b'{"a": 1}'), response_body=tap(b"[1]"), log_body=False))
    assert ev is not None
    assert ev["request"]["body"] is None and ev["response"]["body"] is None


def test_head_response_has_no_body() -> None:
    ev = builder().build(raw(method="HEAD", response_body=tap(b"<html>")))
    assert ev is not None
    assert ev["response"]["body"] is None


def test_user_from_basic_and_callback_wins() -> None:
    basic = [("authorization", "Basic " + base64.b64encode(b"alice:pw").decode())]
    ev = builder().build(raw(request_headers=basic))
    assert ev is not None and ev["user_id"] == "alice"
    ev = builder().build(raw(request_headers=basic, user_id="from-callback"))
    assert ev is not None and ev["user_id"] == "from-callback"
    ev = builder().build(raw(request_headers=basic, user_id=12345))
    assert ev is not None and ev["user_id"] == "12345"


def test_wrong_callback_types_are_dropped_not_fatal() -> None:
    ev = builder().build(raw(user_id=object(), company_id=["x"], metadata="not a dict"))
    assert ev is not None
    assert ev["user_id"] is None and ev["company_id"] is None and ev["metadata"] is None


def test_masks_headers_and_bodies() -> None:
    b = builder(
        REQUEST_HEADER_MASKS=["authorization"],
        RESPONSE_HEADER_MASKS=["Set-Cookie"],
        REQUEST_BODY_MASKS=["password"],
        RESPONSE_BODY_MASKS=["token"],
    )
    ev = b.build(
        raw(
            request_headers=[("Authorization", "Basic YWxpY2U6cHc=")],
            request_body=tap(b'{"password": "p", "items": [{"Password": "q"}]}'),
            response_headers=[("set-cookie", "s=1")],
            response_body=tap(b'{"token": "t"}'),
        )
    )
    assert ev is not None
    assert ev["request"]["headers"] == {}  # masks remove what they name, as the originals did
    assert ev["user_id"] == "alice"  # identity is read before masking
    assert ev["request"]["body"] == {"items": [{}]}
    assert ev["response"]["headers"] == {}
    assert ev["response"]["body"] == {}


def test_mask_event_model_mutate_replace_and_raise() -> None:
    def mutate(e: EventModel) -> EventModel:
        e.response.body["password"] = None
        e.metadata = {"masked": True}
        return e

    ev = builder(MASK_EVENT_MODEL=mutate).build(raw(response_body=tap(b'{"password": "x"}')))
    assert ev is not None and ev["response"]["body"] == {"password": None} and ev["metadata"] == {"masked": True}

    def in_place(e: EventModel) -> None:
        e.user_id = "changed"

    ev = builder(MASK_EVENT_MODEL=in_place).build(raw())
    assert ev is not None and ev["user_id"] == "changed"

    def readme_mask(e: EventModel) -> EventModel:  # the originals' README example: raises when a body is None
        if "password" in e.response.body:
            e.response.body["password"] = None
        return e

    ev = builder(MASK_EVENT_MODEL=readme_mask).build(raw(response_body=tap(b'{"password": "p"}')))
    assert ev is not None and ev["response"]["body"] == {"password": None}
    ev = builder(MASK_EVENT_MODEL=readme_mask).build(raw(method="GET"))  # no body: the mask sees ""
    assert ev is not None and ev["response"]["body"] is None and ev["metadata"] is None

    def boom(e: EventModel) -> EventModel:
        raise RuntimeError("bug in user code")

    ev = builder(MASK_EVENT_MODEL=boom).build(raw(request_body=tap(b'{"password": "p"}')))
    assert ev is not None  # kept, but without the bodies the mask could not vouch for
    assert ev["request"]["body"] is None and ev["response"]["body"] is None
    assert ev["metadata"] == {"moesif_mask_failed": True} and ev["response"]["status"] == 200


def test_bodies_that_masks_cannot_reach_are_left_out() -> None:
    b = builder(REQUEST_BODY_MASKS=["password"])
    ev = b.build(raw(request_body=tap(b"user=a&password=hunter2"), response_body=tap(b"password=ok")))
    assert ev is not None
    assert ev["request"]["body"] is None and "hunter2" not in json.dumps(ev)
    assert ev["metadata"]["moesif_body_omitted"]["request"].startswith("body masks are set")
    assert ev["response"]["transfer_encoding"] == "base64"  # no response masks: sent as is
    big = b'{"password": "hunter2", "pad": "' + b"x" * 500 + b'"}'
    ev = b.build(raw(request_body=tap(big, limit=100)))
    assert ev is not None and "hunter2" not in json.dumps(ev) and ev["request"]["body"] is None


def test_transaction_id_header_any_case_and_always_an_id() -> None:
    ev = builder().build(raw(request_headers=[("x-moesif-transaction-id", "abc")], transaction_id="abc"))
    assert ev is not None and list(ev["request"]["headers"]) == ["x-moesif-transaction-id"]
    ev = builder().build(raw())
    assert ev is not None and len(ev["transaction_id"]) == 36  # DISABLED_TRANSACTION_ID: still an event id


def test_non_utf8_header_values_are_recovered_or_replaced() -> None:
    ev = builder().build(
        raw(request_headers=[("HTTP_X_NAME", "J\xc3\xbcrgen"), ("HTTP_X_BAD", "\xff\xfe")], wsgi_headers=True)
    )
    assert ev is not None
    assert ev["request"]["headers"]["X-Name"] == "Jürgen"
    json.dumps(ev)


text_or_bytes = st.one_of(st.text(max_size=40), st.binary(max_size=40))


@settings(max_examples=200)
@given(
    headers=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=60)), max_size=8),
    body=st.binary(max_size=300),
    user=st.one_of(st.none(), st.text(max_size=10), st.integers(), st.floats(), st.booleans()),
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)),
)
def test_arbitrary_captures_always_serialise(
    headers: list[tuple[str, str]], body: bytes, user: object, metadata: object
) -> None:
    ev = builder(REQUEST_BODY_MASKS=["a"], REQUEST_HEADER_MASKS=["b"]).build(
        raw(
            request_headers=headers,
            request_body=tap(body, limit=100),
            response_body=tap(body),
            user_id=user,
            metadata=metadata,
            request_time=time.time(),
        )
    )
    assert ev is not None
    json.dumps(ev)


def test_wsgi_environ_copy_is_accepted_as_headers() -> None:
    environ = {"HTTP_X_ONE": "1", "CONTENT_TYPE": "text/plain", "wsgi.input": object(), "REQUEST_METHOD": "GET"}
    ev = builder().build(raw(request_headers=environ, wsgi_headers=True))
    assert ev is not None and ev["request"]["headers"] == {"X-One": "1", "Content-Type": "text/plain"}


_WSGI_KEYS = st.sampled_from(["HTTP_HOST", "HTTP_AUTHORIZATION", "HTTP_X_FORWARDED_FOR", "CONTENT_TYPE", "wsgi.input"])


@settings(max_examples=80, deadline=None)
@given(
    headers=st.lists(st.tuples(st.one_of(_WSGI_KEYS, st.text(max_size=20)), st.text(max_size=60)), max_size=8),
    wsgi=st.booleans(),
    body=st.one_of(st.binary(max_size=300), st.just(b'{"a": [1, {"B": "x"}], "n": 123456789012345678901234567890}')),
    limit=st.sampled_from([1 << 20, 100]),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    user=st.one_of(st.none(), st.text(max_size=10), st.integers()),
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)),
    masks=st.booleans(),
)
def test_plain_dicts_and_the_event_model_give_the_same_json(
    headers: list[tuple[str, str]],
    wsgi: bool,
    body: bytes,
    limit: int,
    method: str,
    user: object,
    metadata: object,
    masks: bool,
) -> None:
    """Without MASK_EVENT_MODEL events are built as plain dicts; with one, as EventModel objects. A mask that
    changes nothing must give byte for byte the JSON the plain path gives."""
    from moesif_core.jsoncodec import dumps

    kw: dict[str, object] = {"REQUEST_BODY_MASKS": ["a"], "RESPONSE_HEADER_MASKS": ["content-type"]} if masks else {}
    capture = raw(
        method=method,
        request_headers=headers,
        wsgi_headers=wsgi,
        request_body=tap(body, limit=limit),
        response_headers=[("Content-Type", "application/json"), ("X-Two", "2")],
        response_body=tap(body),
        user_id=user,
        metadata=metadata,
        peer_ip="192.0.2.1",
        transaction_id="825e1f89-4a88-4820-99ac-d541cefb8e04",
    )
    plain = builder(**kw).build(capture)
    seen: list[EventModel] = []
    via_model = builder(**kw, MASK_EVENT_MODEL=lambda event: seen.append(event) or event).build(capture)
    assert plain is not None and via_model is not None
    assert len(seen) == 1 and isinstance(seen[0], EventModel)
    assert dumps(plain) == dumps(via_model)
    assert dumps(plain) == dumps(builder(**kw).build(capture.freeze()))  # the queue's frozen form: the same
    # the worker's batches: JSON bodies serialised at once and copied in, the same bytes
    assert dumps([plain]) == dumps([builder(**kw).build(capture.freeze(), embed_bodies=True)])


@pytest.mark.parametrize(
    ("metadata", "sent_metadata"),
    [
        (None, None),
        ({1: "a key that is not a string"}, {"1": "a key that is not a string"}),
        ({"big": 2**70}, {"big": 2**70}),
        ({"nan": float("nan")}, {"nan": None}),
    ],
    ids=["plain", "non-string-key", "big-int", "nan"],
)
def test_a_batch_with_embedded_bodies_reads_as_the_parsed_one(metadata: object, sent_metadata: object) -> None:
    """The worker serialises JSON bodies as it builds (no parsed tree held per queued event); a batch that needs
    the slower fallbacks (a user's metadata with a non-string key, an integer beyond 64 bits) still holds each
    body whole and exact, big integers in the body included. A NaN in metadata goes as null, valid JSON (it used to
    go as the invalid ``NaN`` when a big integer elsewhere in the batch sent the batch through the fallback)."""
    import json

    from moesif_core.jsoncodec import Embedded, dumps

    body = (
        b'{"id": 123456789012345678901234567890, "items": [{"a": 1.5}, "\\u00e9"], "k": null, "pad": "'
        + b"x" * 300
        + b'"}'
    )
    capture = raw(
        request_body=tap(body), response_body=tap(b"[1, 2]"), metadata=metadata, transaction_id="t-1"
    ).freeze()
    embedded = builder().build(capture, embed_bodies=True)
    assert embedded is not None and isinstance(embedded["request"]["body"], Embedded)
    parsed = builder().build(capture)
    assert parsed is not None
    sent = json.loads(dumps([embedded, embedded]))
    assert sent[0]["request"]["body"] == json.loads(body)
    assert sent[0]["request"]["body"]["id"] == 123456789012345678901234567890
    assert sent[1]["response"]["body"] == [1, 2]
    assert sent[0]["metadata"] == sent[1]["metadata"] == sent_metadata
    for event in sent:
        event["metadata"] = metadata
    assert json.dumps(sent) == json.dumps([parsed, parsed])


def test_a_json_body_goes_into_the_batch_as_written_when_nothing_must_change_in_it() -> None:
    """A worker's batch copies an unmasked JSON body of EMBED_MIN_BYTES or more in as the app wrote it (parsed only
    to check it is JSON): the same JSON value as the parsed path, its own spacing and escapes, big integers exact.
    Masks, a body orjson refuses (NaN, a lone surrogate) and a truncated body still go the parsed way."""
    import json

    from moesif_core.build import EMBED_MIN_BYTES
    from moesif_core.jsoncodec import Embedded, dumps

    pad = b"x" * EMBED_MIN_BYTES
    written = b' {"id": 123456789012345678901234567890, "e": "\\u00e9\\/", "f": 1e2, "pad": "' + pad + b'"}\n'

    def built(body: bytes, limit: int = 1 << 20, **kw: object) -> dict[str, object]:
        capture = raw(request_body=tap(body, limit=limit), transaction_id="t-1").freeze()
        event = builder(**kw).build(capture, embed_bodies=True)
        assert event is not None
        request = event["request"]
        assert isinstance(request, dict)
        return request

    request = built(written)
    assert isinstance(request["body"], Embedded) and request["body"].data == written
    assert request["transfer_encoding"] == "json"
    [sent] = json.loads(dumps([{"request": request}]))
    assert sent["request"]["body"] == json.loads(written)  # the exact integer, "é/", 100.0

    [sent] = json.loads(dumps([{"request": built(written, REQUEST_BODY_MASKS=["E"])}]))
    assert sent["request"]["body"] == {k: v for k, v in json.loads(written).items() if k != "e"}

    nan = b'{"n": NaN, "pad": "' + pad + b'"}'
    [sent] = json.loads(dumps([{"request": built(nan)}]))
    assert sent["request"]["body"] == {"n": None, "pad": pad.decode()}  # valid JSON in the batch, as before

    surrogate = b'{"s": "\\\\ud800", "pad": "' + pad + b'"}'
    assert built(surrogate)["transfer_encoding"] == "json"  # an escaped backslash: a plain string, kept as JSON
    lone = b'{"s": "\\ud800", "pad": "' + pad + b'"}'
    assert built(lone)["transfer_encoding"] == "base64"  # not a string UTF-8 can hold: not JSON, as before

    cut = built(written, limit=EMBED_MIN_BYTES)
    assert cut["transfer_encoding"] == "base64"

    deep = b"[" * 255 + b"]" * 255 + b" " * EMBED_MIN_BYTES  # deeper than orjson writes: parsed and written again
    body = built(deep)["body"]
    assert isinstance(body, Embedded) and body.data == deep.strip()


def test_a_queued_capture_is_not_walked_by_the_cyclic_gc() -> None:
    """What waits in the queue (20,000 captures while the collector is away) must not lengthen the app's full
    collections: once the GC has seen a frozen capture, it no longer tracks it."""
    import gc

    from moesif_core.queue import EventQueue

    queue = EventQueue(100, 1 << 20, 10)
    assert queue.put(
        raw(
            request_headers=[("HTTP_HOST", "localhost"), ("CONTENT_TYPE", "application/json")],
            wsgi_headers=True,
            request_body=tap(b'{"a": 1}'),
            response_headers=(("Content-Type", "application/json"),),
            response_body=tap(b'{"b": 2}' * 3, limit=10),
            peer_ip="192.0.2.1",
            transaction_id="825e1f89-4a88-4820-99ac-d541cefb8e04",
        )
    )
    # A tuple is untracked once all it holds is: the inner tuples at the GC's first look (a young collection, in
    # an app), the capture at the next; the app makes thousands of young collections per full one.
    gc.collect()
    gc.collect()
    [frozen] = queue.take(0)
    assert not gc.is_tracked(frozen)
    ev = builder().build(frozen)
    assert ev is not None and ev["response"]["transfer_encoding"] == "base64"
    assert ev["metadata"] == {TRUNCATED_METADATA_KEY: {"response": 24}}


def test_metadata_with_odd_keys_and_values_serialises_as_before() -> None:
    """The batch is serialised without orjson's non-string-key option first (faster); a user's metadata with an
    int key or a date still goes, with the key as text and the date in ISO-8601."""
    import datetime

    from moesif_core.jsoncodec import dumps

    when = datetime.datetime(2025, 11, 25, 23, 1, 46)
    assert dumps([{"metadata": {1: "one", "at": when}}]) == b'[{"metadata":{"1":"one","at":"2025-11-25T23:01:46"}}]'
    assert dumps([{"metadata": {"n": 2**70}}]) == b'[{"metadata":{"n":1180591620717411303424}}]'


def test_a_backing_off_worker_compacts_the_queue_and_captures_come_back_whole() -> None:
    """While the collector is away the queue only grows: the worker that backs off packs what waits (a fifth of
    the memory or less: five times as many captures fit in EVENT_QUEUE_MAX_BYTES, or more) and they come out
    exactly as queued, in order, also those queued meanwhile. A capture whose metadata cannot be packed (a
    datetime) stays; header names of a str subclass (aiohttp's istr) are packed as plain text."""
    import datetime

    class Name(str):
        pass

    from moesif_core.queue import COMPACT_CHUNK, EventQueue

    n = 3 * COMPACT_CHUNK + 50
    queue = EventQueue(10 * n, 1 << 30, COMPACT_CHUNK)

    def capture(i: int, metadata: object = None) -> RawCapture:
        return raw(
            request_headers=[("HTTP_HOST", "localhost"), ("HTTP_USER_AGENT", f"client/{i}")],
            wsgi_headers=True,
            request_body=tap(b'{"a": %d}' % i),
            response_headers=[(Name("Content-Type") if i == 9 else "Content-Type", "application/json")],
            response_body=tap(b"x" * 100, limit=10),
            metadata=metadata if metadata is not None else {"n": i, "tags": ["a", 1.5, None, True]},
            transaction_id=f"t-{i}",
        )

    when = datetime.datetime(2026, 1, 1)
    for i in range(n):
        assert queue.put(capture(i, {"at": when} if i == 7 else None))
    full = queue.bytes
    queue.compact(time.monotonic() + 30)
    assert queue.bytes < full / 5 and len(queue) == n and queue.pending() == n
    assert queue.put(capture(n))
    queue.compact(time.monotonic() + 30)
    first = queue.take(0)  # a batch taken between two rounds of compaction
    assert queue.put(capture(n + 1))
    queue.compact(time.monotonic() + 30)
    out = first
    while len(queue):
        out += queue.take(0)
    assert queue.bytes == 0
    assert out == [capture(i, {"at": when} if i == 7 else None).freeze() for i in range(n + 2)]
    assert type(out[9][FROZEN_FIELDS.index("response_headers")][0]) is str
    event = builder().build(out[-1])
    assert event is not None and event["request"]["body"] == {"a": n + 1}
    assert event["response"]["body"] == base64.b64encode(b"x" * 10).decode()


def test_packed_captures_go_in_batches_of_at_most_batch_size() -> None:
    """A pack is never split and never makes a batch longer than BATCH_SIZE (the collector's limit on one POST): a
    batch that has begun ends before a pack that would not fit. Captures too few for a pack stay unpacked."""
    import datetime

    from moesif_core.queue import EventQueue

    queue = EventQueue(1000, 1 << 30, 10)
    odd = {"at": datetime.datetime(2026, 1, 1)}
    for i in range(35):  # the first one cannot be packed: it stays, in front of the packs
        assert queue.put(raw(transaction_id=f"t-{i}", metadata=odd if i == 0 else None))
    full = queue.bytes
    queue.compact(time.monotonic() + 30)
    assert queue.bytes < full and len(queue) == 35
    assert not queue.compactable()  # the last five are fewer than a pack
    sizes, ids = [], []
    while len(queue):
        batch = queue.take(0)
        queue.done(len(batch))
        sizes.append(len(batch))
        ids += [frozen[FROZEN_FIELDS.index("transaction_id")] for frozen in batch]
    assert sizes == [1, 10, 10, 10, 4]
    assert ids == [f"t-{i}" for i in range(35)]
    assert queue.bytes == 0 and queue.pending() == 0


def test_compaction_beside_puts_and_takes_loses_and_repeats_nothing() -> None:
    """Request threads put, workers take batches and a backing-off worker compacts, all at once: every capture comes
    out exactly once, whole, and the byte count goes back to zero."""
    import threading

    from moesif_core.queue import EventQueue

    producers, per_producer = 3, 1500
    queue = EventQueue(producers * per_producer, 1 << 30, 50)
    taken: list[tuple[object, ...]] = []
    done = threading.Event()

    def produce(p: int) -> None:
        for i in range(per_producer):
            assert queue.put(raw(transaction_id=f"{p}-{i}", request_headers=[("HTTP_HOST", "h")], wsgi_headers=True))

    def consume() -> None:
        while not done.is_set() or len(queue):
            batch = queue.take(0.01)
            taken.extend(batch)
            queue.done(len(batch))

    def compact() -> None:
        while not done.is_set():
            queue.compact(time.monotonic() + 0.01)

    workers = [threading.Thread(target=consume) for _ in range(2)] + [threading.Thread(target=compact)]
    for t in workers:
        t.start()
    puts = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in puts:
        t.start()
    for t in puts:
        t.join()
    done.set()
    for t in workers:
        t.join()
    tid = FROZEN_FIELDS.index("transaction_id")
    ids = sorted(str(frozen[tid]) for frozen in taken)
    assert ids == sorted(f"{p}-{i}" for p in range(producers) for i in range(per_producer))
    assert queue.bytes == 0 and queue.pending() == 0
    assert all(isinstance(frozen, tuple) and frozen[FROZEN_FIELDS.index("uri")] for frozen in taken)
