"""Instructions per event, counted by valgrind's callgrind: figures that do not move with the machine's load.

    python benchmarks/instructions.py                      # every adapter's request path, the worker, a POST
    python benchmarks/instructions.py --only worker post   # some of them (about 4 minutes)
    python benchmarks/instructions.py --only request --adapters flask django

On this project's shared 2-core machines a timing moves by a factor of two from one run to the next, so a change
of a few percent cannot be seen in ``event_cost.py``; an instruction count can (with ``PYTHONHASHSEED`` fixed, two
runs agree within ~1%). It is not time (cache misses, thread wake-ups and the cyclic GC's share are not in it):
use it to compare two versions of one piece of code, and ``event_cost.py`` for what a user's server pays.

Each figure runs a piece of work twice under callgrind, ``--small`` and ``--large`` times, and divides the
difference by the difference in count, so start-up cancels out:

- **request path**, per adapter (Flask, Starlette, Django, Tornado, aiohttp; the ``run_all.py`` apps, trivial
  route): the wrapped request minus the bare one, with the worker kept from starting (captures only queue), i.e.
  what the request thread pays;
- **worker**, per route (trivial, realistic): building one event from its queued capture, serialising and gzipping
  it as part of a batch of 100 (what ``Agent._process`` does, without the POST);
- **post**: one ``send_events`` of a gzipped 100-event batch to a stub collector on 127.0.0.1, i.e. the client's
  share of a batch.

Needs ``valgrind`` (Debian's package) and the frameworks; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

ADAPTERS = ("flask", "asgi", "django", "tornado", "aiohttp")
ROUTES = ("trivial", "realistic")


# -- the pieces of work, run in a child under callgrind --------------------------------------------------------------


def work_request(framework: str, variant: str, n: int) -> None:
    import event_cost

    import moesif_core.agent as agent_module

    agent_module.Agent.start = lambda self: None  # type: ignore[method-assign]  # no worker: captures only queue
    calls, _, run = event_cost._calls(framework, "ours", "http://127.0.0.1:9")
    for agent in list(agent_module._AGENTS):
        agent._running = True
        agent._queue.max_events = 1 << 30
        agent._queue.max_bytes = 1 << 40
    run.block(calls[f"trivial/{variant}"], n)


def work_worker(route: str, n: int) -> None:
    import run_all

    import moesif_core.agent as agent_module
    from moesif_core.jsoncodec import dumps

    agent_module.Agent.start = lambda self: None  # type: ignore[method-assign]
    calls, _ = run_all.flask_apps("ours", "http://127.0.0.1:9")
    agent = next(iter(agent_module._AGENTS))
    agent._running = True
    call = calls[f"{route}/wrapped"]
    for _ in range(100):
        call()
    batch = agent._queue.take(0)
    build = agent.builder.build
    for _ in range(n // 100):
        gzip.compress(dumps([build(raw, True) for raw in batch]), 1)


def work_post(n: int) -> None:
    import event_cost

    from moesif_core.client import IngestionClient
    from moesif_core.jsoncodec import dumps

    proc, url = event_cost.start_stub()
    try:
        client = IngestionClient("app", url, user_agent="bench", timeout=5)
        event = {"request": {"uri": "http://127.0.0.1/hello", "verb": "GET"}, "response": {"status": 200}}
        body = dumps([event] * 100)
        for _ in range(n):
            assert client.send_events(body).ok
    finally:
        proc.kill()


# -- the parent ------------------------------------------------------------------------------------------------------


def count(args: List[str]) -> int:
    """Instructions callgrind counts for one child run of this script."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no count from callgrind: {out.stderr[-500:]}")
    return int(found.group(1))


def per_unit(args: Callable[[int], List[str]], small: int, large: int) -> float:
    return (count(args(large)) - count(args(small))) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only", nargs="+", choices=("request", "worker", "post"), default=["request", "worker", "post"]
    )
    parser.add_argument("--adapters", nargs="+", choices=ADAPTERS, default=list(ADAPTERS), help="for the request path")
    parser.add_argument("--small", type=int, default=200, help="requests (or events, or POSTs / 10) in the short run")
    parser.add_argument("--large", type=int, default=1200, help="... and in the long one")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "request":
            work_request(rest[0], rest[1], int(rest[2]))
        elif kind == "worker":
            work_worker(rest[0], int(rest[1]))
        else:
            work_post(int(rest[0]))
        return
    small, large = args.small, args.large
    rows: List[str] = ["| what | instructions |", "|---|---:|"]

    def row(what: str, value: float, note: Optional[str] = None) -> None:
        rows.append(f"| {what} | {value:,.0f}{f' ({note})' if note else ''} |")
        print(rows[-1], flush=True)

    if "request" in args.only:
        for fw in args.adapters:
            bare = per_unit(lambda n, fw=fw: ["request", fw, "bare", str(n)], small, large)
            wrapped = per_unit(lambda n, fw=fw: ["request", fw, "wrapped", str(n)], small, large)
            row(f"request path, {fw}, trivial: added per request", wrapped - bare, f"bare app {bare:,.0f}")
    if "worker" in args.only:
        for route in ROUTES:
            row(
                f"worker, {route}: build + serialise + gzip per event",
                per_unit(lambda n, route=route: ["worker", route, str(n)], small * 5, large * 5),
            )
    if "post" in args.only:
        row("client: one POST of a 100-event batch", per_unit(lambda n: ["post", str(n)], small // 10, large // 10))
    print()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
