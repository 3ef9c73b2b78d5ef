from __future__ import annotations

from demo import views
from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("", views.index, name="index"),
    path("api/items", views.items, name="items"),
    path("api/whoami", views.whoami, name="whoami"),
    path("api/async", views.async_status, name="async"),
    path("form", views.feedback, name="feedback"),
    path("download", views.download, name="download"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
