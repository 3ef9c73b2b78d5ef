"""Settings for the moesifdjango example: a small app with the Moesif middleware where the README puts it.

Events go to ``MOESIF_BASE_URI`` (default: a local collector on http://127.0.0.1:5080, started with
``moesif-collector``) under ``MOESIF_APPLICATION_ID``. Nothing here is fit for production (DEBUG, a fixed key).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = os.environ.get("EXAMPLE_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "moesifdjango.middleware.moesif_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


def identify_user(req: Any, res: Any) -> Any:
    """The README's callback. Without it the logged-in ``request.user`` is used anyway, except under ASGI for a view
    that never looked at the user (resolving it needs the database, which the middleware does not touch from the
    event loop); with it, the middleware runs this in Django's sync thread when the user is not resolved yet."""
    if req.user and req.user.is_authenticated:
        return req.user.username
    return None


def identify_company(req: Any, res: Any) -> Any:
    """Any (req, res) callback works; this one reads a header the demo client may send."""
    return req.headers.get("X-Company-Id")


def get_metadata(req: Any, res: Any) -> dict[str, Any]:
    return {"example": "django_project", "view": getattr(req.resolver_match, "view_name", None)}


def should_skip(req: Any, res: Any) -> bool:
    """Health probes (a load balancer's, or the demo's start-up check) are not API calls: not sent."""
    return "health/probe" in req.path


MOESIF_MIDDLEWARE = {
    "APPLICATION_ID": os.environ.get("MOESIF_APPLICATION_ID", "demo-application-id"),
    "BASE_URI": os.environ.get("MOESIF_BASE_URI", "http://127.0.0.1:5080"),
    "LOG_BODY": True,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_METADATA": get_metadata,
    "SKIP": should_skip,
    "REQUEST_BODY_MASKS": ["password"],
    # send partial batches after 1 s so the demo shows calls at once (the default is 2 s)
    "EVENT_BATCH_TIMEOUT": 1,
}

ROOT_URLCONF = "exampleproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "exampleproject.wsgi.application"
ASGI_APPLICATION = "exampleproject.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

LOGIN_REDIRECT_URL = "/api/whoami"
LOGOUT_REDIRECT_URL = "/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
