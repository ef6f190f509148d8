"""The public surface of the package is pinned: changing it is a deliberate act."""

from __future__ import annotations

import cueapi_lite


def test_public_names() -> None:
    assert sorted(cueapi_lite.__all__) == [
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
    for name in cueapi_lite.__all__:
        assert hasattr(cueapi_lite, name), name
