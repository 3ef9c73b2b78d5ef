"""moesifwsgi under gunicorn in its own processes: the fork case (``--preload``, 2 workers), memory while 50 MB
stream through, and the exact bytes of a non-UTF-8 path (gunicorn hands them over as PEP 3333 says)."""

from __future__ import annotations

import base64
import threading
from typing import Any, Dict, List

import pytest
import requests
import wsgi_apps
from wsgi_support import UUID_RE, check_shape, get_json, gunicorn, raw_request, split_response

MIB = 1 << 20


class Upload:
    """A body of ``size`` bytes produced as it is read (so the client does not hold 50 MB either)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.size = size

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return b"u" * n


def _events_for_path(collector: Any, path: str, n: int) -> List[Dict[str, Any]]:
    import time

    deadline = time.monotonic() + 20
    while True:
        events = [e for e in collector.events() if e["request"]["uri"].split("?")[0].endswith(path)]
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


@pytest.mark.slow
def test_preload_two_workers_fork(collector: Any) -> None:
    with gunicorn("flask", collector.url, "--preload", "-w", "2") as url:
        results: List[requests.Response] = []

        def burst() -> None:
            # 4 concurrent slow requests: a sync worker serves one at a time, so both workers get some (a burst is
            # repeated only if the second worker was still starting)
            barrier = threading.Barrier(4)

            def hit() -> None:
                barrier.wait()
                results.append(requests.get(url + "/pid?sleep=0.4", timeout=20))

            threads = [threading.Thread(target=hit) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        for _ in range(3):
            burst()
            if len({r.json()["pid"] for r in results}) == 2:
                break
        pids = {r.json()["pid"] for r in results}
        assert len(pids) == 2  # both forked workers served, each with the middleware built in the master
        events = _events_for_path(collector, "/pid", len(results))
    assert len(events) == len(results)
    by_tx = {e["transaction_id"]: e for e in events}
    assert len(by_tx) == len(results)  # the forked workers do not repeat each other's transaction ids
    for r in results:
        tx = r.headers["X-Moesif-Transaction-Id"]
        assert UUID_RE.match(tx)
        e = by_tx[tx]
        check_shape(e)
        assert e["metadata"] == {"pid": r.json()["pid"]}
        assert e["response"]["status"] == 200
        assert e["response"]["body"] == r.json()


@pytest.mark.slow
def test_memory_stays_bounded_on_50_mb_down_and_up(collector: Any) -> None:
    size = 50 * MIB
    with gunicorn("flask", collector.url, "-w", "1") as url:
        requests.get(url + f"/stream?size={2 * MIB}", timeout=30).raise_for_status()  # warm up every code path
        requests.post(url + "/upload", data=b"w" * (2 * MIB), timeout=30).raise_for_status()
        _events_for_path(collector, "/upload", 1)
        before = get_json(url + "/_maxrss")["maxrss_kib"]
        with requests.get(url + f"/stream?size={size}&chunk=65536", stream=True, timeout=60) as r:
            received = sum(len(c) for c in r.iter_content(1 << 16))
        assert received == size

        up = requests.post(url + "/upload", data=Upload(size), timeout=60)
        assert up.json() == {"len": size}
        events = _events_for_path(collector, "/stream", 2) + _events_for_path(collector, "/upload", 2)
        after = get_json(url + "/_maxrss")["maxrss_kib"]
    grown_mib = (after - before) / 1024
    print(
        f"\npeak RSS of the gunicorn worker: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after a 50 MiB "
        f"download and a 50 MiB upload (+{grown_mib:.1f} MiB)"
    )
    # Holding either body would add 50 MiB; the cap is 1 MiB per body, plus the event built from it (base64, JSON).
    assert grown_mib < 20
    down = [e for e in events if e["request"]["uri"].endswith(f"size={size}&chunk=65536")]
    assert len(down) == 1 and down[0]["metadata"]["moesif_body_truncated"] == {"response": size}
    assert base64.b64decode(down[0]["response"]["body"]) == wsgi_apps.expected_stream(MIB)
    upload = [
        e
        for e in events
        if e["request"]["uri"].endswith("/upload") and e["request"]["headers"]["Content-Length"] == str(size)
    ]
    assert len(upload) == 1 and upload[0]["metadata"]["moesif_body_truncated"] == {"request": size}


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["flask", "bottle", "pyramid"])
def test_non_utf8_path_exact_bytes(collector: Any, framework: str) -> None:
    with gunicorn(framework, collector.url, "-w", "1") as url:
        port = int(url.rsplit(":", 1)[1])
        # gunicorn refuses raw non-ASCII bytes in the request line (400); percent-encoded they reach PATH_INFO as
        # latin-1 text, one character per byte, as PEP 3333 says
        raw = raw_request(
            port,
            b"GET /items/caf%E9%FF%20x?r=%E9&s=%C3%A9 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Latin: caf\xe9\r\nConnection: close\r\n\r\n",
        )
        status, _, _ = split_response(raw)
        events = _events_for_path(collector, "x", 1)
    assert len(events) == 1
    e = events[0]
    assert e["request"]["uri"] == "http://127.0.0.1/items/caf%E9%FF%20x?r=%E9&s=%C3%A9"
    assert e["request"]["headers"]["X-Latin"] == "caf\xe9"
    assert e["response"]["status"] == int(status.split()[1])


@pytest.mark.slow
def test_capture_outgoing_requests(collector: Any) -> None:
    with gunicorn("flask", collector.url, "-w", "1", "--threads", "4", MOESIF_CAPTURE_OUTGOING="1") as url:
        target = url + "/items/out"
        r = requests.get(url + "/call", params={"url": target}, timeout=20)
        assert r.json() == {"status": 200}
        import time

        deadline = time.monotonic() + 20
        while True:
            events = [e for e in collector.events() if e["request"]["uri"] == target]
            if len(events) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert sorted(e["direction"] for e in events) == ["Incoming", "Outgoing"]
    outgoing = next(e for e in events if e["direction"] == "Outgoing")
    assert outgoing["request"]["verb"] == "GET" and outgoing["response"]["status"] == 200
    assert outgoing["response"]["body"] == {"id": "out"}
