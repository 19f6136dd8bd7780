"""The HAProxy driver is a driver like any vendor's: it uses the driver contract, its data
model and toolkit, never the API's models nor the deprecated contract 0 (AST, every import
statement of every module under ``operator/drivers/haproxy``, and what those load)."""

from __future__ import annotations

from unit.importgraph import graph, module_name, reachable, sources

DRIVER = "drivers/haproxy/"
FORBIDDEN = ("lbaas.api", "lbaas.drivers.base", "lbaas.drivers.legacy")


def forbidden_imports(modules: dict[str, str]) -> dict[str, list[str]]:
    """Driver module → the forbidden modules it loads, directly or through others."""
    edges = graph(modules)
    found = {}
    for path in modules:
        if not path.startswith(DRIVER):
            continue
        loaded = reachable(edges, edges[module_name(path)])
        bad = sorted(m for m in loaded if m == "lbaas.api" or m.startswith(FORBIDDEN))
        if bad:
            found[module_name(path)] = bad
    return found


def test_the_haproxy_driver_imports_no_api_and_no_contract_0() -> None:
    modules = sources()
    assert any(path.startswith(DRIVER) for path in modules)
    assert forbidden_imports(modules) == {}


def test_the_check_catches_a_direct_and_an_indirect_import() -> None:
    modules = sources()
    planted = {
        **modules,
        "drivers/haproxy/monitor.py": modules["drivers/haproxy/monitor.py"]
        + "\ndef f():\n    from lbaas.api.healthmonitor import HealthMonitorSpec\n",
        "drivers/haproxy/names.py": modules["drivers/haproxy/names.py"]
        + "\nif TYPE_CHECKING:\n    from lbaas.drivers import base\n",
    }
    found = forbidden_imports(planted)
    assert "lbaas.api.healthmonitor" in found["lbaas.drivers.haproxy.monitor"]
    assert "lbaas.drivers.base" in found["lbaas.drivers.haproxy.names"]
    # render imports monitor: it loads the API now too.
    assert "lbaas.api.healthmonitor" in found["lbaas.drivers.haproxy.render"]
