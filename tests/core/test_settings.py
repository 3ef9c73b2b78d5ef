"""Settings: one clear error at construction, naming the key, what was expected, and a did-you-mean."""

from __future__ import annotations

import warnings

import pytest

from moesif_core import Settings


def build(**kw: object) -> Settings:
    return Settings.from_mapping({"APPLICATION_ID": "app", **kw})


def test_defaults_match_the_originals() -> None:
    s = build()
    assert s.base_uri == "https://api.moesif.net"
    assert s.log_body is True
    assert s.event_queue_size == 1_000_000
    assert s.event_worker_count == 2
    assert s.authorization_header_name == "authorization"
    assert s.authorization_user_id_field == "sub"
    assert s.max_body_size == 1024 * 1024
    assert s.exit_flush_timeout == 5.0


def test_missing_application_id_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="APPLICATION_ID is missing"):
        Settings.from_mapping({"LOG_BODY": True})
    with pytest.raises(ValueError, match="APPLICATION_ID"):
        Settings.from_mapping({"APPLICATION_ID": "   "})


def test_misspelt_key_gets_did_you_mean() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'LOG_BODDY'\. Did you mean 'LOG_BODY'\?"):
        build(LOG_BODDY=False)


def test_wrong_type_names_key_and_expected_type() -> None:
    with pytest.raises(TypeError, match=r"LOG_BODY must be True or False, got str 'no'"):
        build(LOG_BODY="no")
    with pytest.raises(TypeError, match="BATCH_SIZE must be an integer"):
        build(BATCH_SIZE="10")
    with pytest.raises(TypeError, match="IDENTIFY_USER must be a function"):
        build(IDENTIFY_USER="user-1")
    with pytest.raises(TypeError, match="REQUEST_BODY_MASKS must be a list of strings"):
        build(REQUEST_BODY_MASKS="password")


def test_out_of_range_values_refused() -> None:
    with pytest.raises(ValueError, match="BATCH_SIZE must be greater than 0"):
        build(BATCH_SIZE=0)
    with pytest.raises(ValueError, match="BASE_URI must be an http"):
        build(BASE_URI="api.moesif.net")


def test_every_original_spelling_is_accepted() -> None:
    s = build(LOCAL_DEBUG=True, DISABLE_TRANSACTION_ID=True, LOCAL_MOESIF_BASEURL="http://127.0.0.1:9/")
    assert s.debug and s.disable_transaction_id
    assert s.base_uri == "http://127.0.0.1:9"
    assert build(DISABLED_TRANSACTION_ID=True).disable_transaction_id


def test_keys_the_originals_accepted_warn_but_work() -> None:
    with pytest.warns(UserWarning, match="USE_MOESIF_PROXY is accepted for compatibility"):
        s = build(USE_MOESIF_PROXY=True)
    assert s.application_id == "app"


def test_none_means_unset_and_adapter_defaults_apply() -> None:
    s = Settings.from_mapping({"APPLICATION_ID": "a", "BATCH_SIZE": None}, defaults={"BATCH_SIZE": 25})
    assert s.batch_size == 100  # None given explicitly: the core default, as dict.get would have
    s = Settings.from_mapping({"APPLICATION_ID": "a"}, defaults={"BATCH_SIZE": 25})
    assert s.batch_size == 25


def test_where_names_the_users_setting() -> None:
    with pytest.raises(ValueError, match=r"^settings\.MOESIF_MIDDLEWARE: APPLICATION_ID"):
        Settings.from_mapping({}, where="settings.MOESIF_MIDDLEWARE")
    with pytest.raises(TypeError, match="must be a dict"):
        Settings.from_mapping(["APPLICATION_ID"])  # type: ignore[arg-type]


def test_describe_never_contains_the_application_id() -> None:
    with warnings.catch_warnings():
        s = build(APPLICATION_ID="secret-app-id-123", IDENTIFY_USER=lambda *a: "u")
    assert "secret-app-id-123" not in s.describe()
    assert "identify_user" in s.describe()


def test_canonical_spelling_wins_and_flags_or() -> None:
    s = build(LOCAL_MOESIF_BASEURL="http://127.0.0.1:1", BASE_URI="http://127.0.0.1:2")
    assert s.base_uri == "http://127.0.0.1:2"
    s = Settings.from_mapping(
        {"APPLICATION_ID": "a", "BASE_URI": "http://127.0.0.1:2", "LOCAL_MOESIF_BASEURL": "http://127.0.0.1:1"}
    )
    assert s.base_uri == "http://127.0.0.1:2"
    assert build(DEBUG=True, LOCAL_DEBUG=False).debug
    assert build(LOCAL_DEBUG=True, DEBUG=False).debug


def test_empty_base_uri_means_default_and_bad_ones_refused() -> None:
    assert build(BASE_URI="").base_uri == "https://api.moesif.net"
    with pytest.raises(ValueError, match="BASE_URI"):
        build(BASE_URI="http://")


def test_non_finite_numbers_refused() -> None:
    with pytest.raises(ValueError, match="EVENT_BATCH_TIMEOUT must be a finite number"):
        build(EVENT_BATCH_TIMEOUT=float("inf"))
    with pytest.raises(ValueError, match="finite"):
        build(REQUEST_TIMEOUT=float("nan"))
