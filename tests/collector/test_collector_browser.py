"""The live page in real headless Chromium: rows appear, filters work, a click shows the event in full.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``) and the
``selenium`` package. When they are missing this test FAILS (CI installs them); it is never skipped.
Selenium is pointed at the system driver, so Selenium Manager never downloads anything.
A screenshot is saved to ``$ARTIFACTS_DIR`` (default: ``.artifacts/`` at the repository root).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moesif_collector import Collector

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
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


def _event(make_event: Any, i: int, path: str, status: int, user: Any) -> Any:
    event = make_event(i, user_id=user)
    event["request"]["verb"] = "POST"
    event["request"]["uri"] = f"http://localhost{path}"
    event["response"]["status"] = status
    return event


def test_live_page(browser: Any, helpers: Any, make_event: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def wait(predicate: Any, message: str, timeout: float = 10) -> Any:
        # The table is rebuilt when data changes, so an element found a moment ago may be gone: retry.
        return WebDriverWait(
            browser, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda d: predicate(), message)

    def rows() -> list[Any]:
        found: list[Any] = browser.find_elements(By.CSS_SELECTOR, "#calls-body tr.call-row")
        return found

    def row_paths() -> list[str]:
        # Read in one script call: atomic with respect to the page's re-rendering.
        paths: list[str] = browser.execute_script(
            "return Array.from(document.querySelectorAll('#calls-body tr.call-row td[data-col=\"path\"]'))"
            ".map(function (td) { return td.textContent; });"
        )
        return paths

    def click_row(path: str) -> bool:
        for row in rows():
            if row.find_element(By.CSS_SELECTOR, 'td[data-col="path"]').text == path:
                row.click()
                return True
        return False

    with Collector(refresh_ms=150) as collector:
        browser.get(collector.url + "/")
        wait(
            lambda: browser.find_element(By.ID, "live-status").get_attribute("data-state") == "live",
            "the page never went live",
        )
        assert rows() == [] and browser.find_element(By.ID, "calls-empty").is_displayed()

        form = _event(make_event, 1, "/orders/new", 201, "alice")
        form["request"]["body"] = base64.b64encode(b"item=book&qty=2&note=caf\xc3\xa9").decode()
        form["request"]["transfer_encoding"] = "base64"
        form["response"]["body"] = {"order_id": 77, "status": "created"}
        form["response"]["transfer_encoding"] = "json"
        evil = _event(
            make_event, 2, '/search/<img src=x onerror="window.__xss=1">', 200, "<script>window.__xss=2</script>"
        )
        events = [
            form,
            _event(make_event, 0, "/orders/1", 200, "bob"),
            evil,
            _event(make_event, 3, "/orders/2", 503, "carol"),
            _event(make_event, 4, "/health", 200, None),
        ]
        client = helpers.Client(collector.url)
        assert client.post("/v1/events/batch", events).status == 201
        client.close()

        wait(lambda: len(rows()) == 5, "the 5 calls never appeared")
        assert row_paths()[0] == "/health"  # newest first
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "collector-page-live.png"))
        assert '/search/<img src=x onerror="window.__xss=1">' in row_paths()  # shown as text, not markup
        assert browser.execute_script("return window.__xss === undefined") is True
        assert browser.find_element(By.ID, "stat-calls").text == "5"
        assert browser.find_element(By.ID, "stat-error-rate").text == "20.0%"
        route_paths = [r.text for r in browser.find_elements(By.CSS_SELECTOR, '#routes-body td[data-col="path"]')]
        assert "/orders/{id}" in route_paths and len(route_paths) == 4  # /orders/1 and /orders/2 are one route

        # Filters: path substring, then status class, then user; the table and totals follow.
        browser.find_element(By.ID, "filter-path").send_keys("orders")
        wait(lambda: sorted(row_paths()) == ["/orders/1", "/orders/2", "/orders/new"], "path filter")
        Select(browser.find_element(By.ID, "filter-status")).select_by_value("5xx")
        wait(lambda: row_paths() == ["/orders/2"], "status filter")
        wait(lambda: browser.find_element(By.ID, "stat-calls").text == "1", "filtered totals")
        assert "status=5xx" in browser.current_url and "path=orders" in browser.current_url
        browser.find_element(By.ID, "filter-clear").click()
        wait(lambda: len(rows()) == 5, "clearing the filters")
        browser.find_element(By.ID, "filter-user").send_keys("ali")
        wait(lambda: row_paths() == ["/orders/new"], "user filter")

        # Click the row: the detail panel shows headers and the decoded body.
        wait(lambda: click_row("/orders/new"), "clicking the row")
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
        wait(lambda: "selected" in rows()[0].get_attribute("class"), "the clicked row is highlighted")

        # New traffic keeps arriving while the panel is open.
        client = helpers.Client(collector.url)
        client.post("/v1/events/batch", [_event(make_event, 9, "/orders/late", 200, "alice")])
        client.close()
        wait(lambda: row_paths() == ["/orders/late", "/orders/new"], "live update under a filter")
        assert panel.is_displayed()

        shot = ARTIFACTS / "collector-page-detail.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe  # no script errors, no CSP violations, no failed loads
