"""The example's views: JSON, a CSRF-protected form, login (Django's LoginView), a streamed file, an async view."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

REPORT = Path(__file__).resolve().parent / "data" / "report.csv"
ITEMS: list[dict[str, Any]] = [{"id": 1, "name": "widget"}, {"id": 2, "name": "gadget"}]


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html")


@csrf_exempt  # a JSON API authenticated by its callers' tokens, not by cookies
def items(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            item = json.loads(request.body)
        except ValueError:
            return JsonResponse({"error": "send a JSON object"}, status=400)
        item["id"] = len(ITEMS) + 1
        ITEMS.append(item)
        return JsonResponse(item, status=201)
    return JsonResponse({"items": ITEMS})


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return JsonResponse({"user": user.get_username() if user.is_authenticated else None})


async def async_status(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0.01)  # stands for awaiting a database or another service
    user = await request.auser() if hasattr(request, "auser") else None  # Django 5
    return JsonResponse({"async": True, "user": user.get_username() if user and user.is_authenticated else None})


def feedback(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return render(request, "demo/thanks.html", {"name": request.POST.get("name", "")})
    return render(request, "demo/form.html")


def download(request: HttpRequest) -> HttpResponse:
    return FileResponse(REPORT.open("rb"), as_attachment=True, filename="report.csv")
