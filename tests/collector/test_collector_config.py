"""GET /v1/config and /v1/rules: served from editable files, re-read on change, with an ETag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moesif_collector import Collector

DEFAULT_CONFIG = {
    "sample_rate": 100,
    "user_sample_rate": {},
    "company_sample_rate": {},
    "regex_config": [],
    "user_rules": {},
    "company_rules": {},
}


def test_defaults(collector: Collector, client: Any) -> None:
    config = client.get("/v1/config")
    assert config.status == 200
    assert config.json() == DEFAULT_CONFIG
    assert len(config.headers["x-moesif-config-etag"]) >= 16
    rules = client.get("/v1/rules")
    assert rules.status == 200 and rules.json() == []
    assert rules.headers["x-moesif-config-etag"] == config.headers["x-moesif-config-etag"]


def test_editing_files_changes_content_and_etag(collector: Collector, client: Any, make_event: Any) -> None:
    etag0 = client.get("/v1/config").headers["x-moesif-config-etag"]
    # Edit the config file in place, as a person with an editor would.
    new_config = {**DEFAULT_CONFIG, "sample_rate": 25, "user_sample_rate": {"alice": 0}}
    collector.config_file.write_text(json.dumps(new_config))
    reply = client.get("/v1/config")
    assert reply.json() == new_config
    etag1 = reply.headers["x-moesif-config-etag"]
    assert etag1 != etag0
    # The events batch response announces the new ETag, so clients know to refetch.
    assert client.post("/v1/events/batch", [make_event()]).headers["x-moesif-config-etag"] == etag1
    # Unchanged content keeps the ETag.
    assert client.get("/v1/config").headers["x-moesif-config-etag"] == etag1
    # A rules edit changes the (combined) ETag too.
    rules = [
        {
            "_id": "r1",
            "type": "regex",
            "block": True,
            "applied_to": "matching",
            "regex_config": [{"conditions": [{"path": "request.route", "value": "/blocked"}]}],
            "response": {"status": 403, "headers": {}, "body": {"error": "blocked"}},
        }
    ]
    collector.rules_file.write_text(json.dumps(rules))
    reply = client.get("/v1/rules")
    assert reply.json() == rules
    etag2 = reply.headers["x-moesif-config-etag"]
    assert etag2 not in (etag0, etag1)
    assert client.get("/v1/config").headers["x-moesif-config-etag"] == etag2


def test_invalid_edit_keeps_last_valid_content(collector: Collector, client: Any) -> None:
    before = client.get("/v1/config")
    collector.config_file.write_text('{"sample_rate": ')  # half-saved
    during = client.get("/v1/config")
    assert during.status == 200 and during.body == before.body
    assert during.headers["x-moesif-config-etag"] == before.headers["x-moesif-config-etag"]
    collector.config_file.write_text("[1, 2]")  # valid JSON, wrong shape
    assert client.get("/v1/config").body == before.body
    collector.config_file.write_text('{"sample_rate": 50}')
    assert client.get("/v1/config").json() == {"sample_rate": 50}


def test_python_api_and_files_given_explicitly(tmp_path: Path, helpers: Any) -> None:
    config_file, rules_file = tmp_path / "my-config.json", tmp_path / "my-rules.json"
    config_file.write_text('{"sample_rate": 10}')
    with Collector(config_file=config_file, rules_file=rules_file) as c:
        client = helpers.Client(c.url)
        assert client.get("/v1/config").json() == {"sample_rate": 10}
        assert json.loads(rules_file.read_text()) == []
        etag = c.set_config({"sample_rate": 1})
        reply = client.get("/v1/config")
        assert reply.json() == {"sample_rate": 1} and reply.headers["x-moesif-config-etag"] == etag == c.config_etag
        assert c.set_rules([{"_id": "x"}]) != etag
        assert client.get("/v1/rules").json() == [{"_id": "x"}]
        client.close()
    assert json.loads(config_file.read_text()) == {"sample_rate": 1}  # the file is the source of truth


def test_initial_config_and_rules_arguments(helpers: Any) -> None:
    with Collector(config={"sample_rate": 5}, rules=[{"_id": "r"}]) as c:
        client = helpers.Client(c.url)
        assert client.get("/v1/config").json() == {"sample_rate": 5}
        assert client.get("/v1/rules").json() == [{"_id": "r"}]
        client.close()
