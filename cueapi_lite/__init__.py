"""cueapi-lite: the whole CueAPI (cron with accountability for AI agents) in one process
on one SQLite file, wire-compatible with the official CueAPI clients."""

from __future__ import annotations

__version__ = "0.1.0"

from .app import CueApiLite
from .clock import Clock, ManualClock, SystemClock
from .config import Settings
from .errors import ApiError
from .webhooks import Deliverer, DeliveryFailed, WebhookRequest, WebhookResponse

__all__ = [
    "ApiError",
    "Clock",
    "CueApiLite",
    "Deliverer",
    "DeliveryFailed",
    "ManualClock",
    "Settings",
    "SystemClock",
    "WebhookRequest",
    "WebhookResponse",
    "__version__",
]
