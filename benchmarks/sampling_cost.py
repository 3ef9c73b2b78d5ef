"""What a request costs when sampling leaves it out, next to one that is sampled (issue 10's figure).

A trivial Flask route wrapped by moesifwsgi, called in-process through WSGI, with the local collector (in its own
process) serving ``sample_rate`` 100 and then 0. Prints the median wall and request-thread CPU time per request for
bare, sampled (100 %) and unsampled (0 %), and how many events the collector stored in each phase.

    python benchmarks/sampling_cost.py [--requests 3000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).parent))
from wsgi_overhead import _environ, _make_app, _time_block


def start_collector(tmp: str, config: Dict[str, Any]) -> tuple[subprocess.Popen[str], str, Path]:
    cfg = Path(tmp) / "config.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moesif_collector",
            "serve",
            "--port",
            "0",
            "--db",
            os.path.join(tmp, "s.db"),
            "--config-file",
            str(cfg),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip().rsplit(" ", 1)[-1], cfg


def stored(url: str) -> int:
    with urllib.request.urlopen(url + "/api/stats") as r:
        return int(json.load(r)["calls"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from moesifwsgi import MoesifMiddleware

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, cfg = start_collector(tmp, {"sample_rate": 100})
        try:
            app = _make_app()
            bare = app.wsgi_app
            mw = MoesifMiddleware(bare, {"APPLICATION_ID": "bench", "BASE_URI": url})
            mw.agent.start()
            mw.agent.remote.refresh_now()
            base = _environ()
            results: Dict[str, List[int]] = {"bare": [], "sampled (100 %)": [], "unsampled (0 %)": []}
            cpu: Dict[str, float] = {k: 0.0 for k in results}
            counts: Dict[str, int] = {}
            for phase, rate in (("sampled (100 %)", 100), ("unsampled (0 %)", 0)):
                cfg.write_text(json.dumps({"sample_rate": rate}))
                mw.agent.remote.refresh_now()
                assert mw.agent.remote.current()[0].sample_rate == rate
                before = stored(url)
                for _ in range(args.rounds):
                    for name, wsgi in (("bare", bare), (phase, mw)):
                        t = time.thread_time()
                        _time_block(wsgi, base, args.requests, results[name])
                        cpu[name] += time.thread_time() - t
                    mw.agent.flush(60)
                counts[phase] = stored(url) - before
        finally:
            proc.terminate()
            proc.wait()
    per = {k: statistics.median(v) / 1000 for k, v in results.items()}
    calls = {k: len(v) for k, v in results.items()}
    print(f"{args.rounds} rounds x {args.requests} requests, trivial Flask route, in-process WSGI")
    print()
    print("| variant | median wall (us) | added over bare (us) | request-thread CPU (us) | events stored |")
    print("|---|---:|---:|---:|---:|")
    for name in results:
        added = "" if name == "bare" else f"{per[name] - per['bare']:.1f}"
        print(f"| {name} | {per[name]:.1f} | {added} | {cpu[name] / calls[name] * 1e6:.1f} | {counts.get(name, '')} |")


if __name__ == "__main__":
    main()
