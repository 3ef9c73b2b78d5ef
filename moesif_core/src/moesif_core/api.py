"""Profile updates (users, companies, subscriptions) and the ``MoesifAPIClient`` shape of the originals.

``MoesifAPIClient(application_id).api.update_user(user)`` works as in the originals' READMEs; adapters mix in
:class:`ProfileHelpers` so ``middleware.update_user(user)`` works too. Required ids are checked before any network
call and a missing one raises ``ValueError`` naming it.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

from .client import IngestionClient, MoesifAPIError, dumps
from .settings import DEFAULT_BASE_URI
from .version import __version__

logger = logging.getLogger("moesif")


class MoesifAPI:
    """The ``.api`` of :class:`MoesifAPIClient`: synchronous calls that raise :class:`MoesifAPIError`."""

    def __init__(self, client: IngestionClient) -> None:
        self.client = client

    def update_user(self, user: Any) -> None:
        self.client.update_user(user)

    def update_users_batch(self, users: Sequence[Any]) -> None:
        self.client.update_users_batch(users)

    def update_company(self, company: Any) -> None:
        self.client.update_company(company)

    def update_companies_batch(self, companies: Sequence[Any]) -> None:
        self.client.update_companies_batch(companies)

    def update_subscription(self, subscription: Any) -> None:
        self.client.update_subscription(subscription)

    def update_subscriptions_batch(self, subscriptions: Sequence[Any]) -> None:
        self.client.update_subscriptions_batch(subscriptions)

    def create_event(self, event: Any) -> None:
        """Send one event (a wire dict or an :class:`~moesif_core.event.EventModel`) to ``/v1/events``."""
        payload = event.to_dict() if hasattr(event, "to_dict") else event
        resp = self.client.post("/v1/events", dumps(payload))
        if not 200 <= resp.status_code < 300:
            raise MoesifAPIError(f"moesif: /v1/events answered HTTP {resp.status_code}", resp.status_code)

    def create_events_batch(self, events: Sequence[Any]) -> None:
        payload = [e.to_dict() if hasattr(e, "to_dict") else e for e in events]
        resp = self.client.post("/v1/events/batch", dumps(payload))
        if not 200 <= resp.status_code < 300:
            raise MoesifAPIError(f"moesif: /v1/events/batch answered HTTP {resp.status_code}", resp.status_code)


class MoesifAPIClient:
    """``MoesifAPIClient("your application id").api.update_user({...})``."""

    def __init__(self, application_id: str, base_uri: Optional[str] = None, timeout: float = 10.0) -> None:
        if not isinstance(application_id, str) or not application_id.strip():
            raise ValueError("moesif: MoesifAPIClient needs your Moesif Application Id as its first argument.")
        self.client = IngestionClient(
            application_id, base_uri or DEFAULT_BASE_URI, user_agent=f"moesif-core-python/{__version__}",
            timeout=timeout,
        )
        self.api = MoesifAPI(self.client)


class ProfileHelpers:
    """``update_user`` & co. on a middleware object. Invalid input raises ``ValueError``/``TypeError`` at once;
    a network failure is logged on the ``moesif`` logger and never raised into the app (as the originals)."""

    client: IngestionClient

    def _profile_call(self, name: str, payload: Any) -> Optional[bool]:
        fn = getattr(self.client, name)
        try:
            fn(payload)
        except MoesifAPIError as exc:
            logger.warning("%s", exc)
            return False
        logger.debug("moesif: %s succeeded", name)
        return True

    def update_user(self, user_profile: Mapping[str, Any], *_: Any) -> Optional[bool]:
        return self._profile_call("update_user", user_profile)

    def update_users_batch(self, user_profiles: Sequence[Mapping[str, Any]], *_: Any) -> Optional[bool]:
        return self._profile_call("update_users_batch", user_profiles)

    def update_company(self, company_profile: Mapping[str, Any], *_: Any) -> Optional[bool]:
        return self._profile_call("update_company", company_profile)

    def update_companies_batch(self, companies_profiles: Sequence[Mapping[str, Any]], *_: Any) -> Optional[bool]:
        return self._profile_call("update_companies_batch", companies_profiles)

    def update_subscription(self, subscription_profile: Mapping[str, Any], *_: Any) -> Optional[bool]:
        return self._profile_call("update_subscription", subscription_profile)

    def update_subscriptions_batch(
        self, subscription_profiles: Sequence[Mapping[str, Any]], *_: Any
    ) -> Optional[bool]:
        return self._profile_call("update_subscriptions_batch", subscription_profiles)
