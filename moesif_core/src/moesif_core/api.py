"""Profile updates (users, companies, subscriptions) and the ``MoesifAPIClient`` shape of the originals.

``MoesifAPIClient(application_id).api.update_user(user)`` works as in the originals' READMEs; adapters mix in
:class:`ProfileHelpers` so ``middleware.update_user(user)`` works too. Required ids are checked before any network
call and a missing one raises ``ValueError`` naming it.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import requests

from .client import IngestionClient, MoesifAPIError, default_base_uri
from .jsoncodec import dumps
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
        self._post_events("/v1/events", event.to_dict() if hasattr(event, "to_dict") else event)

    def create_events_batch(self, events: Sequence[Any]) -> None:
        self._post_events("/v1/events/batch", [e.to_dict() if hasattr(e, "to_dict") else e for e in events])

    def _post_events(self, path: str, payload: Any) -> None:
        try:
            resp = self.client.post(path, dumps(payload))
        except requests.RequestException as exc:
            raise MoesifAPIError(f"could not reach {self.client.url(path)}: {exc}") from exc
        if not 200 <= resp.status_code < 300:
            raise MoesifAPIError(f"{path} answered HTTP {resp.status_code}", resp.status_code)


class MoesifAPIClient:
    """``MoesifAPIClient("your application id").api.update_user({...})``.

    Without ``base_uri`` it sends where the app's middleware sends (its ``BASE_URI``), as the originals did, else
    to the hosted API."""

    def __init__(self, application_id: str, base_uri: Optional[str] = None, timeout: float = 10.0) -> None:
        if not isinstance(application_id, str) or not application_id.strip():
            raise ValueError("MoesifAPIClient needs your Moesif Application Id as its first argument.")
        self.client = IngestionClient(
            application_id,
            base_uri or default_base_uri(),
            user_agent=f"moesif-core-python/{__version__}",
            timeout=timeout,
        )
        self.api = MoesifAPI(self.client)


class ProfileHelpers:
    """``update_user`` & co. on a middleware object, as the originals had them: they never raise into the app.

    Invalid input (a missing ``user_id``...) is caught before any network call and logged as an error that names
    the missing field; a network failure is logged too. The return value says whether the profile was accepted.
    Use ``MoesifAPIClient(...).api`` for calls that raise instead.
    """

    client: IngestionClient

    def _profile_call(self, name: str, payload: Any) -> Optional[bool]:
        fn = getattr(self.client, name)
        try:
            fn(payload)
        except (ValueError, TypeError) as exc:
            logger.error("moesif: %s not sent: %s", name, exc)
            return False
        except MoesifAPIError as exc:
            logger.warning("moesif: %s not sent: %s", name, exc)
            return False
        except Exception:
            logger.warning("moesif: %s failed", name, exc_info=True)
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

    def update_subscriptions_batch(self, subscription_profiles: Sequence[Mapping[str, Any]], *_: Any) -> Optional[bool]:
        return self._profile_call("update_subscriptions_batch", subscription_profiles)
