"""Whether a bound VIP's own spec still allows the device it is bound to (pure).

A VIP is placed once; afterwards a change of its ``deviceRef`` names another device. Left
alone, the VIP would stay Active on a device its spec no longer names. The binder moves it
instead, as a failover does (its address kept where the new device's pool has it), and says
so when the named device cannot take it (the VIP then stays where it is, serving).
``deviceSelector``, like a Pod's ``nodeSelector``, is for placing: a VIP is not moved when
labels change afterwards.
"""

from __future__ import annotations

from lbaas.api.vip import VIPSpec


def spec_excludes(spec: VIPSpec, device: str) -> str | None:
    """Why ``spec`` no longer allows ``device``, or None."""
    if spec.device_ref and spec.device_ref != device:
        return f"spec.deviceRef names device {spec.device_ref}"
    return None
