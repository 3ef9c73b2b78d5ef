"""Django for the moesifdjango tests: configured here (no pytest-django), one SQLite file per session.

This folder has no ``__init__.py`` and is named ``djangoapp`` so nothing in it can shadow the real ``django``
package; its helper modules are prefixed ``djt_`` so they cannot clash with other test folders' modules.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import django
import pytest
from django.conf import settings

_TMP = tempfile.mkdtemp(prefix="moesifdjango-tests-")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="moesifdjango-tests-not-secret",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF="djt_urls",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(_TMP, "db.sqlite3")}},
        MIDDLEWARE=[],  # each test's server sets its own stack (djt_support.STACK)
        MOESIF_MIDDLEWARE={"APPLICATION_ID": "placeholder"},
        USE_TZ=True,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        MEDIA_ROOT=_TMP,
        FILE_UPLOAD_TEMP_DIR=_TMP,
    )
    django.setup()


@pytest.fixture(scope="session", autouse=True)
def _database() -> Iterator[None]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    get_user_model().objects.create_user("alice", "alice@example.com", "wonderland")
    yield
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_agents() -> Iterator[None]:
    """Each test gets its own agents (its own settings dict) and leaves no worker threads behind."""
    yield
    import moesifdjango

    moesifdjango.shutdown(timeout=2)
