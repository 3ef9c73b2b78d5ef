"""The demo: the local collector, example apps with the middleware pointed at it, traffic, and what was captured.

    nox -s demo              # runs everything, prints a summary, exits leaving no process behind
    nox -s demo -- --serve   # keeps the collector and the apps running to look at (Ctrl-C stops them)

Starts ``moesif-collector`` on a free loopback port with a fresh database, then the Flask (moesifwsgi), FastAPI
(moesifasgi), Django (moesifdjango), Tornado (moesiftornado) and aiohttp (moesif-aiohttp) examples with
``MOESIF_BASE_URI`` set to it, sends each a realistic mix (users from bearer JWTs and from tokens the apps know,
companies, a form post, errors, a large body, a streamed response), sends user, company and subscription profiles with
``MoesifAPIClient``, waits until the collector has stored every event the apps should have sent, and prints a summary
with the page's views to open.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import requests

from moesif_core import MoesifAPIClient

HERE = Path(__file__).resolve().parent
DJANGO_DIR = HERE / "django_project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jwt(sub: str) -> str:
    """An unsigned demo JWT: the middleware reads the user id from its payload (no signature check)."""

    def seg(obj: Dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{seg({'alg': 'none', 'typ': 'JWT'})}.{seg({'sub': sub, 'name': sub.title()})}.demo-signature"


@dataclass
class App:
    name: str
    argv: List[str]
    cwd: Path = HERE.parent
    prepare: Optional[List[str]] = None
    port: int = field(default_factory=free_port)
    proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def apps() -> List[App]:
    py = sys.executable
    return [
        App("flask", [py, str(HERE / "flask_app.py")]),
        App("fastapi", [py, str(HERE / "fastapi_app.py")]),
        App(
            "django",
            [py, "manage.py", "runserver", "--noreload", "--nothreading"],
            cwd=DJANGO_DIR,
            prepare=[py, "manage.py", "migrate", "--noinput", "-v", "0"],
        ),
        App("tornado", [py, str(HERE / "tornado_app.py")]),
        App("aiohttp", [py, str(HERE / "aiohttp_app.py")]),
    ]


def traffic(app: App) -> List[Tuple[str, str, Dict[str, Any]]]:
    """(method, path, requests kwargs) for one app; each request yields one event unless the app skips it."""
    alice = {"Authorization": "Bearer demo-token"}  # known to the apps: user alice, company acme
    bob = {"Authorization": "Bearer other-token"}  # user bob, company globex
    big = {"name": "bulk", "rows": [{"i": i, "text": "x" * 100} for i in range(3000)]}  # ~400 KB
    calls: List[Tuple[str, str, Dict[str, Any]]] = []
    for who in ("carol", "dave", "erin"):  # users known only from a JWT's `sub`
        calls.append(("GET", "/api/items", {"headers": {"Authorization": "Bearer " + jwt(who)}}))
    if app.name == "django":
        calls += [
            ("GET", "/api/items", {}),
            ("POST", "/api/items", {"json": {"name": "sprocket", "password": "hunter2"}}),
            ("POST", "/api/items", {"json": big}),
            ("GET", "/api/async", {}),
            ("GET", "/download", {"stream": True}),
            ("GET", "/no-such-page", {}),
        ]
        return calls
    calls += [
        ("GET", "/api/items", {"headers": alice}),
        ("POST", "/api/items", {"headers": alice, "json": {"name": "pen", "password": "hunter2"}}),
        ("POST", "/api/items", {"headers": bob, "json": big}),
        ("GET", "/api/items", {}),  # 401
        ("GET", "/api/boom", {}),  # 500
        ("GET", "/no-such-route", {"headers": bob}),  # 404
        ("GET", "/health/probe", {}),  # skipped by the apps' SKIP callback
    ]
    if app.name == "flask":
        calls += [
            ("POST", "/api/contact", {"data": {"email": "a@example.com", "message": "hi"}}),
            ("GET", "/api/export", {"stream": True}),
        ]
    elif app.name == "fastapi":
        calls += [
            ("POST", "/api/contact", {"data": {"email": "a@example.com", "message": "hi"}}),
            ("GET", "/api/stream", {"stream": True}),
            ("GET", "/api/report", {"headers": alice}),
        ]
    elif app.name == "tornado":
        calls += [("GET", "/api/stream", {"stream": True})]
    elif app.name == "aiohttp":
        calls += [("GET", "/api/events", {"stream": True})]  # server-sent events
    return calls


def wait_http(url: str, deadline: float, proc: subprocess.Popen[bytes], name: str) -> None:
    while True:
        if proc.poll() is not None:
            log = Path(tempfile.gettempdir())  # the app's output is in its log file beside the demo database
            raise SystemExit(
                f"demo: {name} exited with {proc.returncode} before it served a request (see its "
                f"log in the demo's temporary folder under {log})"
            )
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is up
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: {name} did not answer on {url} in time") from None
            time.sleep(0.1)


def start_collector(tmp: str) -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moesif_collector", "serve", "--port", "0", "--db", os.path.join(tmp, "demo.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise SystemExit(f"demo: the collector did not start: {line!r}")
    return proc, line.strip().rsplit(" ", 1)[-1]


def collector_json(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return json.load(r)


def send(app: App) -> Tuple[int, int]:
    """Send the app's traffic; returns (requests sent, events expected)."""
    sent = expected = 0
    # a connection per request, as many clients: a server may close a kept-alive one after an app error
    with requests.Session() as s:
        s.headers["Connection"] = "close"
        for method, path, kwargs in traffic(app):
            stream = kwargs.pop("stream", False)
            try:
                r = s.request(method, app.url + path, timeout=30, stream=stream, **kwargs)
                if stream:
                    for _ in r.iter_content(64 * 1024):  # read it all, as a client would
                        pass
                r.close()
            except requests.RequestException as exc:
                print(f"demo: {app.name} {method} {path}: {exc}")
            sent += 1
            expected += 0 if path.startswith("/health") else 1
    return sent, expected


def send_profiles(url: str) -> None:
    """The profiles the page's users and companies views show, sent as an app would (the profile helpers)."""
    api = MoesifAPIClient("demo-app", base_uri=url).api
    api.update_users_batch(
        [
            {"user_id": "alice", "company_id": "acme", "metadata": {"email": "alice@acme.example", "plan": "pro"}},
            {"user_id": "bob", "company_id": "globex", "metadata": {"email": "bob@globex.example", "plan": "free"}},
            {"user_id": "carol", "metadata": {"email": "carol@example.com", "signed_up": "2026-11-02"}},
        ]
    )
    api.update_companies_batch(
        [
            {"company_id": "acme", "company_domain": "acme.example", "metadata": {"industry": "anvils", "seats": 40}},
            {"company_id": "globex", "company_domain": "globex.example", "metadata": {"industry": "energy"}},
        ]
    )
    api.update_subscription(
        {
            "subscription_id": "sub-acme-1",
            "company_id": "acme",
            "status": "active",
            "current_period_end": "2027-01-01T00:00:00.000",
            "metadata": {"plan": "pro"},
        }
    )


def summary(url: str, per_app: Dict[str, Tuple[int, int]]) -> str:
    calls = collector_json(url, "/api/calls?limit=1000")["calls"]
    stats = collector_json(url, "/api/stats")
    people = collector_json(url, "/api/users")
    firms = collector_json(url, "/api/companies")
    lines = [
        "",
        "What the collector stored",
        "",
        "| app | requests sent | events stored | users | companies |",
        "|---|---|---|---|---|",
    ]
    for name, (sent, _expected) in per_app.items():
        mine = [c for c in calls if _port_of(str(c.get("uri") or "")) == _ports[name]]
        users = sorted({c["user_id"] for c in mine if c.get("user_id")})
        companies = sorted({c["company_id"] for c in mine if c.get("company_id")})
        lines.append(f"| {name} | {sent} | {len(mine)} | {', '.join(users)} | {', '.join(companies)} |")
    lines += [
        "",
        f"calls: {stats['calls']}   errors: {stats['errors']} ({stats['error_rate']:.0%})   "
        f"p50: {_ms(stats.get('p50_ms'))}   p95: {_ms(stats.get('p95_ms'))}",
        "",
        "| verb | route | calls | errors | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for route in stats.get("routes", [])[:15]:
        lines.append(
            f"| {route['verb']} | {route['route']} | {route['calls']} | {route['errors']} | {_ms(route.get('p50_ms'))}"
            f" | {_ms(route.get('p95_ms'))} |"
        )
    lines += [
        "",
        f"users: {people['total']} ({sum(1 for u in people['users'] if u['profile'])} with a profile)   "
        f"companies: {firms['total']}"
        f" ({sum(1 for c in firms['companies'] if c['subscriptions'])} with a subscription)",
        "",
        "The page (run the demo with -- --serve to keep it up):",
        f"  {url}/                  calls live, traffic over the last hour (calls/min, 4xx, 5xx, p95), totals",
        f"  {url}/?view=routes      per route (/items/41, /items/42: /items/{{id}}): calls, error rate, p50, p95",
        f"  {url}/?view=users       profiles with metadata, first and last seen, calls and errors",
        f"  {url}/?view=companies   the same per company, with subscriptions",
        f"  {url}/?view=config      the sample rates and governance rules being served, and their files",
        f"  {url}/?status=5xx       any view takes filters in its URL: path, status, user, company, from, to",
    ]
    return "\n".join(lines)


_ports: Dict[str, int] = {}


def _port_of(uri: str) -> int:
    try:
        return int(uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # lets the apps' exit flush run
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep the collector and the apps running")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moesif-demo-") as tmp:
        collector, url = start_collector(tmp)
        procs: List[subprocess.Popen[Any]] = []
        try:
            env_base = {
                **os.environ,
                "MOESIF_BASE_URI": url,
                "MOESIF_APPLICATION_ID": "demo-app",
                "EXAMPLE_DB": os.path.join(tmp, "django.sqlite3"),
                "PYTHONUNBUFFERED": "1",
            }
            started: List[App] = []
            for app in apps():
                env = {**env_base, "PORT": str(app.port)}
                if app.prepare:
                    subprocess.run(app.prepare, cwd=app.cwd, env=env, check=True, timeout=120)
                argv = app.argv + ([f"127.0.0.1:{app.port}"] if app.name == "django" else [])
                log = open(os.path.join(tmp, f"{app.name}.log"), "wb")
                app.proc = subprocess.Popen(argv, cwd=app.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
                procs.append(app.proc)
                started.append(app)
            deadline = time.monotonic() + 60
            for app in started:
                assert app.proc is not None
                wait_http(app.url + "/health/probe", deadline, app.proc, app.name)  # skipped by the apps' SKIP
                _ports[app.name] = app.port
            print(f"demo: collector on {url}; apps: " + ", ".join(f"{a.name} {a.url}" for a in started))
            per_app = {app.name: send(app) for app in started}
            send_profiles(url)
            expected = sum(e for _, e in per_app.values())
            deadline = time.monotonic() + 60
            while collector_json(url, "/api/stats")["calls"] < expected:
                if time.monotonic() > deadline:
                    print(f"demo: only {collector_json(url, '/api/stats')['calls']} of {expected} events arrived")
                    break
                time.sleep(0.2)
            print(summary(url, per_app))
            print(f"\nOr follow the calls in a terminal:  python -m moesif_collector tail --url {url}")
            if args.serve:
                print("demo: serving; Ctrl-C to stop")
                try:
                    while all(p.poll() is None for p in procs):
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            return 0
        finally:
            for p in procs:
                stop(p)
            stop(collector)


if __name__ == "__main__":
    sys.exit(main())
