"""Which events are sent, from the app config: the rate for one call, and the draw.

Precedence as in the originals: the first ``regex_config`` entry whose conditions all match, then the user's
rate, then the company's, then ``sample_rate``, then 100. A kept event carries ``weight = floor(100 / rate)``
(1 when the rate is 0), so the collector can scale counts back up. Unlike the originals, an entry with an unknown
condition path simply does not match (it used to silently turn sampling off for every event).
"""

from __future__ import annotations

import math
import random
from typing import Mapping, Optional, Tuple

from .appconfig import AppConfig
from .saferegex import search_bounded


def sampling_fields(
    verb: Optional[str], route: Optional[str], ip: Optional[str], status: Optional[int]
) -> Mapping[str, str]:
    """The event fields ``regex_config`` conditions can name (``route`` is the path, without the query)."""
    fields = {}
    if verb:
        fields["request.verb"] = verb
    if route:
        fields["request.route"] = route
    if ip:
        fields["request.ip_address"] = ip
    if status is not None:
        fields["response.status"] = str(status)
    return fields


def sampling_rate(
    config: AppConfig, fields: Mapping[str, str], user_id: Optional[str] = None, company_id: Optional[str] = None
) -> float:
    for entry in config.regex_config:
        if entry.conditions and all(
            path in fields and search_bounded(pattern, fields[path]) for path, pattern in entry.conditions
        ):
            return entry.sample_rate
    if user_id and user_id in config.user_sample_rate:
        return config.user_sample_rate[user_id]
    if company_id and company_id in config.company_sample_rate:
        return config.company_sample_rate[company_id]
    return config.sample_rate


def needs_late_fields(config: AppConfig) -> bool:
    """Whether the decision needs what is only known after the response (user, company, status)."""
    if config.user_sample_rate or config.company_sample_rate:
        return True
    return any(path == "response.status" for entry in config.regex_config for path, _ in entry.conditions)


def draw(rate: float, rng: random.Random | None = None) -> Tuple[bool, int]:
    """``(keep, weight)`` for one event sampled at ``rate`` percent."""
    if rate >= 100:
        return True, 1
    weight = 1 if rate <= 0 else math.floor(100 / rate)
    keep = (rng or random).random() * 100 < rate
    return keep, weight
