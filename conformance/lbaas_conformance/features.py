"""Which test proves which feature: the ``@feature`` decorator and its registry.

Every test of the suite is tied to exactly one feature of ``lbaas.drivers.capabilities``
(or to :data:`CONTRACT`, what every driver must do whatever it declares) and to one layer:
``contract`` (driver calls only) or ``traffic`` (real requests through the device). Adding a
test for a feature is one decorator away::

    @feature("l7.host", layer=TRAFFIC)
    def test_host_routes_to_its_pool(kit: Kit, backends: Backends) -> None: ...

The plugin skips the test when the driver does not declare the feature (or has no data plane,
for the traffic layer) and the report lists it under its feature. A feature no test is
registered for is reported "no test yet" (see ``lbaas_conformance.report``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from lbaas.drivers.capabilities import FEATURES, PROFILES

CONTRACT = "contract"
"""The pseudo-feature of the tests every driver must pass (apply, delete, probe, deadline)."""
CONTRACT_PROFILE = "CONTRACT"
ALL_PROFILES = (CONTRACT_PROFILE, *PROFILES)

CONTRACT_LAYER = "contract"
TRAFFIC = "traffic"
DECLARATION = "declaration"
"""The kit's own checks of what is declared (strict mode): they prove no feature."""
LAYERS = (CONTRACT_LAYER, TRAFFIC, DECLARATION)

MARK = "lbaas_feature"

REGISTRY: dict[str, set[str]] = {}
"""feature → names of the tests that prove it (``module::function``)."""
LAYER_OF: dict[str, str] = {}
"""test name → its layer."""

F = TypeVar("F", bound=Callable[..., Any])


def profile_of(name: str) -> str:
    return CONTRACT_PROFILE if name == CONTRACT else FEATURES[name].profile


def check_name(name: str) -> None:
    if name != CONTRACT and name not in FEATURES:
        raise ValueError(f"{name!r} is not a feature of lbaas.drivers.capabilities.FEATURES")


def mark(name: str, layer: str = CONTRACT_LAYER) -> pytest.MarkDecorator:
    """The marker tying a test (or one ``pytest.param``) to ``name``; registers nothing."""
    check_name(name)
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r} (one of {', '.join(LAYERS)})")
    return getattr(pytest.mark, MARK)(name, layer)


def register(name: str, test: str, layer: str = CONTRACT_LAYER) -> None:
    """Record that ``test`` proves ``name`` in ``layer`` (for tests generated per feature)."""
    check_name(name)
    REGISTRY.setdefault(name, set()).add(test)
    LAYER_OF[test] = layer


def feature(name: str, *, layer: str = CONTRACT_LAYER) -> Callable[[F], F]:
    """Tie the decorated test to feature ``name`` and register it as a proof of it."""
    check_name(name)

    def decorate(test: F) -> F:
        register(name, f"{test.__module__.rsplit('.', 1)[-1]}::{test.__name__}", layer)
        marked: F = mark(name, layer)(test)
        return marked

    return decorate


def tested() -> set[str]:
    """Features some test proves."""
    return {name for name, tests in REGISTRY.items() if tests}
