"""ASGI entry point: ``uvicorn exampleproject.asgi:application``. The Moesif middleware then runs on the event
loop (it is async-capable), so the async view below never costs a thread switch for it."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")

application = get_asgi_application()
