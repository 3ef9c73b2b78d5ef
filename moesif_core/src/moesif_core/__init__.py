"""moesif_core: what every Moesif adapter shares.

Adapters translate their framework's objects into a :class:`RawCapture` and hand it to an :class:`Agent`; the
agent's workers build the wire events (:class:`EventModel`) and ship them.
"""

from .agent import Agent
from .api import MoesifAPI, MoesifAPIClient, ProfileHelpers
from .body import TRUNCATED_METADATA_KEY, BodyTap, encode_body, json_body
from .build import TRANSACTION_ID_HEADER, EventBuilder
from .callbacks import FIELD_CALLBACKS, field_callbacks
from .capture import RawCapture
from .client import IngestionClient, MoesifAPIError
from .controls import AgentControls, FlushControl
from .environ import content_length, environ_header_pairs
from .event import EventModel, EventRequestModel, EventResponseModel
from .guard import CALLBACK_FAILED, call_user, capture_internal_exceptions
from .ids import new_transaction_id, transaction_id_for
from .preapp import EarlyDecision, PreApp, lower_headers
from .settings import Settings
from .tee import TeeStream
from .version import __version__

__all__ = [
    "CALLBACK_FAILED",
    "FIELD_CALLBACKS",
    "Agent",
    "AgentControls",
    "BodyTap",
    "EarlyDecision",
    "EventBuilder",
    "EventModel",
    "EventRequestModel",
    "EventResponseModel",
    "FlushControl",
    "IngestionClient",
    "MoesifAPI",
    "MoesifAPIClient",
    "MoesifAPIError",
    "PreApp",
    "ProfileHelpers",
    "RawCapture",
    "Settings",
    "TRANSACTION_ID_HEADER",
    "TRUNCATED_METADATA_KEY",
    "TeeStream",
    "__version__",
    "call_user",
    "capture_internal_exceptions",
    "content_length",
    "encode_body",
    "environ_header_pairs",
    "field_callbacks",
    "json_body",
    "lower_headers",
    "new_transaction_id",
    "transaction_id_for",
]
