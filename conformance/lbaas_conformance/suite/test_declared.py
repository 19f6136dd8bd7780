"""The kit's checks of the declaration itself (they prove no feature).

- ``test_no_test_yet[f]``, for each feature no test of the kit proves: a declared one is
  "no test yet" (a failure under ``--strict``: a declared feature without a test is not
  proven); an undeclared one is skipped.
- ``test_core_declared[f]``, for each core feature: an undeclared one fails under
  ``--strict``, else is skipped.

The plugin keeps only the instances that apply, for the profiles asked for.
"""

from __future__ import annotations

import pytest

from lbaas.drivers.capabilities import FEATURES
from lbaas_conformance.features import DECLARATION, mark
from lbaas_conformance.plugin import KIT

EACH = [pytest.param(f, marks=mark(f, DECLARATION), id=f) for f in FEATURES]


@pytest.mark.parametrize("name", EACH)
def test_no_test_yet(request: pytest.FixtureRequest, name: str) -> None:
    run = request.config.stash[KIT]
    if name not in run.kit.features:
        pytest.skip("not declared (no test yet)")
    if run.strict:
        pytest.fail(f"{name} is declared but no test of the kit proves it yet (--strict)")
    pytest.skip("no test yet")


@pytest.mark.parametrize("name", EACH)
def test_core_declared(request: pytest.FixtureRequest, name: str) -> None:
    run = request.config.stash[KIT]
    if name in run.kit.features:
        return
    if run.strict:
        profile = FEATURES[name].profile
        pytest.fail(f"core feature {name} of profile {profile} is not declared (--strict)")
    pytest.skip("not declared")
