"""The live page in real headless Chromium: the calls, the chart, routes, users, companies and config views.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``) and the
``selenium`` package. When they are missing this test FAILS (CI installs them); it is never skipped.
Selenium is pointed at the system driver, so Selenium Manager never downloads anything.
A screenshot of each view is saved to ``$ARTIFACTS_DIR`` (default: ``.artifacts/`` at the repository root).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from moesif_collector import Collector
from moesif_collector.timefmt import format_time

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REBIND_NAME = "rebind.test"
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).resolve().parents[2] / ".artifacts")


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"browser test needs {', '.join(missing)}: apt-get install -y chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("browser test needs the selenium package: pip install selenium")
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager must never fetch anything
    profile = tempfile.mkdtemp(prefix="collector-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1440,1000",
        f"--host-resolver-rules=MAP {REBIND_NAME} 127.0.0.1",  # a DNS-rebinding name, for the Host test
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


XSS = '<img src=x onerror="window.__xss=1">'


def _event(make_event: Any, i: int, path: str, status: int, user: Any, *, minutes_ago: float = 0.5) -> Any:
    event = make_event(i, user_id=user, company_id="acme" if user in ("alice", "bob") else None)
    started = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=minutes_ago)
    event["request"]["verb"] = "POST"
    event["request"]["uri"] = f"http://localhost{path}"
    event["request"]["time"] = format_time(started)
    event["response"]["time"] = format_time(started + timedelta(milliseconds=5 + (i * 37) % 120))
    event["response"]["status"] = status
    return event


def _hour_of_traffic(make_event: Any) -> list[Any]:
    """120 calls over the last hour: /items/<n> reads by alice, bob and dave, some failing."""
    events = []
    for i in range(120):
        user = ("alice", "bob", "dave")[i % 3]
        event = _event(make_event, 100 + i, f"/items/{i % 17}", 200, user, minutes_ago=55 - i * 0.45)
        event["request"]["verb"] = "GET"
        event["response"]["status"] = 404 if i % 11 == 0 else 503 if i % 23 == 0 else 200
        events.append(event)
    return events


def test_live_page(browser: Any, helpers: Any, make_event: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def wait(predicate: Any, message: str, timeout: float = 10) -> Any:
        # The tables are rebuilt when data changes, so an element found a moment ago may be gone: retry.
        return WebDriverWait(
            browser, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda d: predicate(), message)

    def column(table: str, col: str) -> list[str]:
        # Read in one script call: atomic with respect to the page's re-rendering.
        values: list[str] = browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0] + ' td[data-col=\"' + arguments[1] + '\"]'))"
            ".map(function (td) { return td.textContent; });",
            table,
            col,
        )
        return values

    def row_paths() -> list[str]:
        return column("#calls-body tr.call-row", "path")

    def click_row(selector: str, col: str, value: str) -> bool:
        for row in browser.find_elements(By.CSS_SELECTOR, selector):
            if row.find_element(By.CSS_SELECTOR, f'td[data-col="{col}"]').text.startswith(value):
                row.click()
                return True
        return False

    def screenshot(name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / name
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    def tab(view: str) -> None:
        browser.find_element(By.ID, f"tab-{view}").click()
        wait(lambda: browser.find_element(By.ID, f"view-{view}").is_displayed(), f"the {view} view")

    with Collector(refresh_ms=150) as collector:
        browser.get(collector.url + "/")
        wait(
            lambda: browser.find_element(By.ID, "live-status").get_attribute("data-state") == "live",
            "the page never went live",
        )
        assert (
            column("#calls-body tr.call-row", "path") == []
            and browser.find_element(By.ID, "calls-empty").is_displayed()
        )

        form = _event(make_event, 1, "/orders/new", 201, "alice")
        form["request"]["body"] = base64.b64encode(b"item=book&qty=2&note=caf\xc3\xa9").decode()
        form["request"]["transfer_encoding"] = "base64"
        form["response"]["body"] = {"order_id": 77, "status": "created"}
        form["response"]["transfer_encoding"] = "json"
        evil = _event(make_event, 2, "/search/" + XSS, 200, "<script>window.__xss=2</script>")
        events = [
            *_hour_of_traffic(make_event),
            form,
            _event(make_event, 0, "/orders/1", 200, "bob"),
            evil,
            _event(make_event, 3, "/orders/2", 503, "carol"),
            _event(make_event, 4, "/health", 200, None),
        ]
        client = helpers.Client(collector.url)
        assert client.post("/v1/events/batch", events).status == 201
        profiles = [
            {"user_id": "alice", "company_id": "acme", "metadata": {"email": "alice@example.com", "plan": "pro"}},
            {"user_id": "bob", "company_id": "acme", "metadata": {"email": "bob@example.com", "plan": "free"}},
            {"user_id": "mallory", "metadata": {"bio": XSS, "<b>key</b>": "<script>window.__xss=3</script>"}},
        ]
        assert client.post("/v1/users/batch", profiles).status == 201
        company = {"company_id": "acme", "company_domain": "acme.example", "metadata": {"industry": "anvils"}}
        assert client.post("/v1/companies", company).status == 201
        subscription = {
            "subscription_id": "sub-1",
            "company_id": "acme",
            "status": "active",
            "metadata": {"plan": "gold"},
        }
        assert client.post("/v1/subscriptions", subscription).status == 201
        client.close()

        # The calls: the newest 100 of 125, newest first, and a button to the older ones.
        wait(lambda: len(row_paths()) == 100, "the newest 100 calls never appeared")
        assert row_paths()[0] == "/health"
        assert '/search/<img src=x onerror="window.__xss=1">' in row_paths()  # shown as text, not markup
        # the counters come from their own request: poll them too (a loaded machine answers them later)
        wait(lambda: browser.find_element(By.ID, "stat-calls").text == "125", "the calls counter never said 125")
        # The chart: bars and p95 points over the hour.
        chart = browser.find_element(By.ID, "chart")
        wait(lambda: int(chart.get_attribute("data-points") or 0) >= 30, "the chart never drew the hour")
        assert chart.get_attribute("data-calls") == "125"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar-5xx")) >= 2
        screenshot("collector-calls.png")

        older = browser.find_element(By.ID, "page-older")
        wait(older.is_displayed, "the older-calls button")
        older.click()
        wait(lambda: len(row_paths()) == 25, "the older page")
        assert "before_id=" in browser.current_url
        browser.find_element(By.ID, "page-newer").click()  # the 100 newer ones are the newest: the live page
        wait(lambda: len(row_paths()) == 100 and row_paths()[0] == "/health", "back to the newest page")
        assert "before_id=" not in browser.current_url

        # Filters: path substring, then status class, then user; the table and totals follow, and the URL.
        browser.find_element(By.ID, "filter-path").send_keys("orders")
        wait(lambda: sorted(row_paths()) == ["/orders/1", "/orders/2", "/orders/new"], "path filter")
        Select(browser.find_element(By.ID, "filter-status")).select_by_value("5xx")
        wait(lambda: row_paths() == ["/orders/2"], "status filter")
        wait(lambda: browser.find_element(By.ID, "stat-calls").text == "1", "filtered totals")
        assert "status=5xx" in browser.current_url and "path=orders" in browser.current_url
        browser.find_element(By.ID, "filter-clear").click()
        wait(lambda: len(row_paths()) == 100, "clearing the filters")
        browser.find_element(By.ID, "filter-path").send_keys("orders")
        browser.find_element(By.ID, "filter-user").send_keys("ali")
        wait(lambda: row_paths() == ["/orders/new"], "user filter")

        # Click the row: the detail panel shows headers and the decoded body.
        wait(lambda: click_row("#calls-body tr.call-row", "path", "/orders/new"), "clicking the row")
        panel = browser.find_element(By.ID, "event-detail")
        wait(lambda: panel.is_displayed() and panel.get_attribute("data-event-id") != "", "detail panel")
        assert browser.find_element(By.ID, "detail-request-body").text == "item=book&qty=2&note=café"
        assert "decoded as UTF-8 text" in browser.find_element(By.ID, "detail-request-body-note").text
        assert '"order_id": 77' in browser.find_element(By.ID, "detail-response-body").text
        header_names = [
            c.text for c in browser.find_elements(By.CSS_SELECTOR, '#detail-request-headers td[data-col="name"]')
        ]
        assert "X-Moesif-Transaction-Id" in header_names
        assert "/orders/new" in browser.find_element(By.ID, "detail-title").text

        # New traffic keeps arriving while the panel is open.
        client = helpers.Client(collector.url)
        client.post("/v1/events/batch", [_event(make_event, 9, "/orders/late", 200, "alice")])
        client.close()
        wait(lambda: row_paths() == ["/orders/late", "/orders/new"], "live update under a filter")
        assert panel.is_displayed()
        screenshot("collector-detail.png")
        browser.find_element(By.ID, "filter-clear").click()
        wait(lambda: len(row_paths()) == 100, "clearing the filters")

        # Routes: /items/<n> grouped as /items/{id} with its p95; a click filters the calls and the chart.
        tab("routes")
        wait(lambda: "/items/{id}" in column("#routes-body tr.route-row", "path"), "the /items/{id} route")
        routes = column("#routes-body tr.route-row", "path")
        items = routes.index("/items/{id}")
        assert column("#routes-body tr.route-row", "calls")[items] == "120"
        assert column("#routes-body tr.route-row", "p95")[items].endswith(" ms")
        assert "/orders/{id}" in routes and "/items/0" not in routes
        browser.find_element(By.CSS_SELECTOR, '#routes-table th[data-sort="p95"]').click()
        wait(lambda: "sort=p95" in browser.current_url, "sorting by p95")
        screenshot("collector-routes.png")
        wait(lambda: click_row("#routes-body tr.route-row", "path", "/items/{id}"), "clicking the route")
        wait(lambda: browser.find_element(By.ID, "view-calls").is_displayed(), "back to the calls")
        wait(lambda: set(row_paths()) <= {f"/items/{n}" for n in range(17)} and len(row_paths()) == 100, "route filter")
        wait(lambda: chart.get_attribute("data-calls") == "120", "the chart follows the route filter")
        chips = browser.find_elements(By.CSS_SELECTOR, "#filter-chips .chip")
        assert [c.get_attribute("data-param") for c in chips] == ["verb", "route"]
        assert "route=%2Fitems%2F%7Bid%7D" in browser.current_url
        browser.find_element(By.CSS_SELECTOR, '#filter-chips .chip[data-param="route"] .chip-remove').click()
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#filter-chips .chip") == [], "removing the chip")

        # Users: profiles with metadata and activity; hostile metadata stays text; a click filters the calls.
        tab("users")
        wait(lambda: "alice" in column("#users-body tr.person-row", "id"), "the users view")
        ids = column("#users-body tr.person-row", "id")
        alice = ids.index("alice")
        assert "alice@example.com" in column("#users-body tr.person-row", "metadata")[alice]
        assert column("#users-body tr.person-row", "company")[alice] == "acme"
        assert column("#users-body tr.person-row", "calls")[alice] == "42"  # 40 reads, /orders/new, /orders/late
        mallory = column("#users-body tr.person-row", "metadata")[ids.index("mallory")]
        assert XSS in mallory and "<script>window.__xss=3</script>" in mallory
        assert any(i.startswith("carol") and i.endswith("no profile") for i in ids)  # seen only in calls
        screenshot("collector-users.png")
        wait(lambda: click_row("#users-body tr.person-row", "id", "bob"), "clicking a user")
        wait(lambda: browser.find_element(By.ID, "view-calls").is_displayed(), "back to the calls")
        wait(lambda: set(column("#calls-body tr.call-row", "user")) == {"bob"}, "user filter by click")
        assert "user_id=bob" in browser.current_url
        browser.find_element(By.ID, "filter-clear").click()

        # Companies: the profile, its subscription, its users.
        tab("companies")
        wait(lambda: column("#companies-body tr.person-row", "id")[:1] == ["acme"], "the companies view")
        assert "sub-1" in column("#companies-body tr.person-row", "subscriptions")[0]
        assert "gold" in column("#companies-body tr.person-row", "subscriptions")[0]
        assert column("#companies-body tr.person-row", "domain")[0] == "acme.example"
        screenshot("collector-companies.png")

        # Config: what the collector serves, from which file.
        collector.set_config({"sample_rate": 50, "user_sample_rate": {"alice": 10}, "regex_config": []})
        collector.set_rules(
            [{"_id": "r1", "name": "block free plan", "type": "regex", "block": True, "response": {"status": 402}}]
        )
        tab("config")
        wait(lambda: browser.find_element(By.CSS_SELECTOR, "#config-body .big-rate .value").text == "50%", "config")
        assert browser.find_element(By.ID, "config-file").text.endswith("collector.config.json")
        assert "block free plan" in browser.find_element(By.ID, "rules-body").text
        screenshot("collector-config.png")

        # A shared URL opens the same view with the same filters.
        browser.get(collector.url + "/?view=users&company=acm&window=6h")
        wait(lambda: sorted(column("#users-body tr.person-row", "id")) == ["alice", "bob"], "shared users view")
        assert browser.find_element(By.ID, "filter-company").get_attribute("value") == "acm"
        assert "active" in browser.find_element(
            By.CSS_SELECTOR, '#chart-window button[data-window="6h"]'
        ).get_attribute("class")

        assert browser.execute_script("return window.__xss === undefined") is True
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe  # no script errors, no CSP violations, no failed loads


ATTACK_PAGE = """<!DOCTYPE html><title>attacker</title><script>
const C = "COLLECTOR";
const attempts = [
  fetch(C + "/_admin/faults", {method: "POST", mode: "no-cors", body: '{"mode":"status429","retry_after":999}'}),
  fetch(C + "/_admin/clear", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"}),
  fetch(C + "/_admin/clear", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}),
  fetch(C + "/_admin/faults", {method: "DELETE"}),
  fetch(C + "/api/calls").then(r => r.text()),
];
Promise.allSettled(attempts).then(results => {
  document.title = "done " + results.map(r => r.status).join(",");
});
</script>"""


def test_another_origin_cannot_write_to_admin_or_read_by_rebinding(browser: Any, helpers: Any, make_event: Any) -> None:
    """What a page on another origin tried in issue 18, in real Chromium: a no-cors POST (text/plain) setting a
    429 fault and wiping the data, a CORS JSON POST and DELETE (preflighted), a read of /api; then the same
    collector reached under a rebinding name."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from selenium.webdriver.support.ui import WebDriverWait

    with Collector() as collector:
        client = helpers.Client(collector.url)
        assert client.post("/v1/events/batch", [make_event(1)]).status == 201
        page = ATTACK_PAGE.replace("COLLECTOR", collector.url).encode()

        class Attacker(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        attacker = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=attacker.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
            WebDriverWait(browser, 15).until(lambda d: d.title.startswith("done"))
            # no-cors requests "succeed" opaquely; the preflighted ones and the CORS read are refused
            assert browser.title == "done fulfilled,fulfilled,rejected,rejected,rejected"
        finally:
            attacker.shutdown()
            attacker.server_close()
        assert collector.app.faults.settings.mode == "ok"
        assert collector.count_events() == 1
        assert client.post("/v1/events/batch", [make_event(2)]).status == 201  # no 429 for later ingests

        browser.get(f"http://{REBIND_NAME}:{collector.port}/api/calls")
        assert "not this collector's address" in browser.page_source
        assert "calls" not in browser.page_source.split("not this collector")[0]
        browser.get(f"http://localhost:{collector.port}/api/calls")
        assert '"calls"' in browser.page_source
        client.close()
