from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"


def _create_demo_user(sender: Any, **kwargs: Any) -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if not User.objects.filter(username=DEMO_USER).exists():
        User.objects.create_user(DEMO_USER, "demo@example.com", DEMO_PASSWORD)


class DemoConfig(AppConfig):
    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # `python manage.py migrate` also creates the user the login page accepts
        post_migrate.connect(_create_demo_user, sender=self)
