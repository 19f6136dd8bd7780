"""Drift repair through the operator (issue 11): what is changed on the device behind the
operator's back is found by the periodic verification (``LBAAS_RESYNC_INTERVAL``, short here)
and repaired within one interval, with a Warning Event ``DriftRepaired`` (on the VIP, or on the
Device for a VIP no VIP object owns) and a count in ``lbaas_drift_repairs_total``.

Every data plane (``plane``): a pool's member redirected in the device's own files and loaded.
HAProxy's own kinds: runtime API (``set server ... weight 0``, ``state maint``),
``haproxy.cfg`` edited and reloaded by hand, a VIP left on the device by an abandoned
deletion, a frontend added by hand.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dataplane.hxsupport import (
    Backends,
    OperatorDevice,
    free_port_in,
    get,
    haproxy_binary,
    refused,
    spread,
)
from dataplane.opsupport import BACKEND_THIRD, Binary, Site, deploy, event_messages, metric
from dataplane.planes import Plane

from helpers import Api, OperatorProcess, wait_for
from lbaas.drivers.haproxy import runtime

pytestmark = [pytest.mark.cluster]

RESYNC = 3.0
OPERATOR_ENV = {
    "LBAAS_RESYNC_INTERVAL": str(RESYNC),
    "LBAAS_DELETE_ATTEMPTS": "2",
    "LBAAS_RETRY_BACKOFF_MAX": "1",
}
REPAIR_LIMIT = RESYNC + 2.0
"""Within one interval, plus the repair itself (a reload) on a loaded 2-core machine."""


@pytest.fixture
def backends() -> Iterator[Backends]:
    made = Backends(third=BACKEND_THIRD)
    yield made
    for server in made.started:
        server.shutdown()
        server.server_close()


def cli(device: OperatorDevice, line: str) -> str:
    """A runtime API command, as an administrator would send it by hand."""
    return runtime.command(device.state_dir / "haproxy.sock", line)


def master_cli(device: OperatorDevice, line: str) -> str:
    return runtime.command(device.state_dir / "master.sock", line)


def repaired(
    site: Site, operator: OperatorProcess, kind: str, check: Callable[[], bool], what: str
) -> float:
    """Seconds until ``check`` holds again and the repair is counted (after the driver call:
    ``check`` may hold a moment earlier); a new DriftRepaired Event on the VIP names ``kind``."""

    def events() -> int:
        found = event_messages(site.api, site.namespace, site.name, "DriftRepaired")
        return sum(kind in m for m in found)

    def count() -> float:
        return metric(operator, "lbaas_drift_repairs_total", device=site.device.name, kind=kind)

    before, seen = count(), events()
    started = time.monotonic()
    wait_for(lambda: check() and count() > before, REPAIR_LIMIT + 2, what, interval=0.05)
    took = time.monotonic() - started
    wait_for(lambda: events() > seen, 5, f"a new DriftRepaired Event naming {kind}")
    print(f"\n{what}: repaired after {took * 1000:.0f} ms")
    assert took < REPAIR_LIMIT, f"{what}: {took:.1f}s"
    return took


@pytest.mark.haproxy
def test_runtime_changes_by_hand_are_repaired(
    api: Api,
    namespace: str,
    operator: OperatorProcess,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
) -> None:
    device = make_hx_device("127.0.70.64/28")
    site = deploy(api, namespace, device, "rt", backends.http(3))
    backend = f"be_{namespace}__rt__rt"  # VIP rt, its pool rt
    b0, b1, _ = list(site.members)
    reloads = device.reloads()
    cli(device, f"set server {backend}/{b0} weight 0")
    repaired(site, operator, "RuntimeChanged", site.serves_all, "weight 0 set by hand")
    messages = event_messages(api, namespace, "rt", "DriftRepaired")
    assert any(f"server {b0} has weight 0, not 1" in m for m in messages), messages

    cli(device, f"set server {backend}/{b1} state maint")
    repaired(site, operator, "RuntimeChanged", site.serves_all, "MAINT set by hand")
    messages = event_messages(api, namespace, "rt", "DriftRepaired")
    assert any(f"server {b1} is in MAINT" in m for m in messages), messages
    assert device.reloads() == reloads  # runtime drift is repaired at run time

    def members_say(state: str) -> bool:
        return all(site.status("Member", m)["operatingStatus"] == state for m in site.members)

    wait_for(lambda: members_say("NO_MONITOR"), 5, "members back to their truth")


def test_a_pool_edited_behind_the_operators_back_is_repaired(
    api: Api,
    namespace: str,
    operator: OperatorProcess,
    make_op_device: Callable[..., OperatorDevice],
    plane: Plane,
    backends: Backends,
) -> None:
    """Every data plane: a member's address changed in the device's own files and loaded
    (HAProxy: its ``conf.d/`` fragment, reloaded; Envoy: the pool's EDS file)."""
    device = make_op_device("127.0.70.80/28")
    a, b = backends.http(2)
    site = deploy(api, namespace, device, "cfg", [a, b])
    plane.redirect(device.state_dir, namespace, "cfg", "cfg", (b.address, b.port),
                   (a.address, a.port))  # fmt: skip
    wait_for(lambda: set(spread(*site.vip, 6)) == {a.name}, 5, "the edit serving")
    repaired(site, operator, "ConfigChanged", site.serves_all, f"{plane.driver}: pool edited")
    assert site.status()["phase"] == "Active"


@pytest.mark.haproxy
def test_haproxy_cfg_edited_and_reloaded_by_hand_is_repaired(
    api: Api,
    namespace: str,
    operator: OperatorProcess,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
) -> None:
    device = make_hx_device("127.0.70.80/28")
    site = deploy(api, namespace, device, "cfg", backends.http(2))
    config = device.state_dir / "haproxy.cfg"
    text = config.read_text()
    extra = ("127.0.70.94", free_port_in("127.0.70.94/32"))
    config.write_text(text + f"\nlisten extra\n    bind {extra[0]}:{extra[1]}\n    mode tcp\n")
    master_cli(device, "reload")
    wait_for(lambda: not refused(*extra), 5, "the extra listener up")

    def cleaned() -> bool:
        return config.read_text() == text and refused(*extra)

    repaired(site, operator, "ReloadedOutsideOperator", cleaned, "haproxy.cfg edited, reloaded")
    assert site.serves_all()
    assert site.status()["phase"] == "Active"


@pytest.mark.haproxy
def test_abandoned_and_hand_made_vips_are_removed(
    api: Api,
    namespace: str,
    operator: OperatorProcess,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    tmp_path: Path,
) -> None:
    binary = Binary(haproxy_binary(), tmp_path / "bin")
    device = make_hx_device("127.0.70.96/28", config={"haproxyBinary": str(binary.path)})
    members = backends.http(1)
    kept = deploy(api, namespace, device, "kept", members)
    left = deploy(api, namespace, device, "left", members)

    # The deletion cannot reach the device (haproxy -c fails): after deleteAttempts the VIP is
    # released with DeleteAbandoned, and the device keeps serving it.
    binary.take_away()
    api.delete("VIP", "left", namespace)
    api.wait_gone("VIP", "left", namespace, 20)
    (message,) = event_messages(api, namespace, "left", "DeleteAbandoned")
    assert "released after 2 failed attempts" in message, message
    assert get(*left.vip)[0] == 200  # stale: what the orphan check is for

    def repairs() -> float:
        return metric(operator, "lbaas_drift_repairs_total", device=device.name, kind="Orphan")

    before = repairs()
    binary.give_back()
    started = time.monotonic()
    wait_for(lambda: refused(*left.vip), REPAIR_LIMIT + 2, "the abandoned VIP removed")
    took = time.monotonic() - started

    def on_device() -> list[str]:
        return event_messages(api, None, device.name, "DriftRepaired")

    wait_for(lambda: any(f"{namespace}/left" in m for m in on_device()), 5, "Event on the Device")
    wait_for(lambda: repairs() == before + 1, 5, "the removal counted")
    print(f"\nVIP left by DeleteAbandoned: removed {took * 1000:.0f} ms after the device healed")
    assert took < REPAIR_LIMIT

    # A frontend added by hand (a fragment for a VIP that does not exist) and loaded.
    conf_d = device.state_dir / "conf.d"
    by_hand = (kept.address, free_port_in(f"{kept.address}/32"))
    shutil.copy(conf_d / f"{namespace}__kept.cfg", conf_d / "other__by-hand.cfg")
    text = (
        (conf_d / "other__by-hand.cfg").read_text().replace(f"{namespace}__kept", "other__by-hand")
    )
    (conf_d / "other__by-hand.cfg").write_text(text.replace(f":{kept.port}", f":{by_hand[1]}"))
    for copied in (device.state_dir / "maps").glob(f"fe_{namespace}__kept__*.map"):  # L7 maps
        name = copied.name.replace(f"{namespace}__kept", "other__by-hand")
        shutil.copy(copied, copied.with_name(name))
    master_cli(device, "reload")
    wait_for(lambda: not refused(*by_hand), 5, "the hand-made frontend up")
    started = time.monotonic()
    wait_for(lambda: refused(*by_hand), REPAIR_LIMIT + 2, "the hand-made frontend removed")
    took = time.monotonic() - started
    print(f"frontend added by hand: removed after {took * 1000:.0f} ms")
    assert took < REPAIR_LIMIT
    assert not (conf_d / "other__by-hand.cfg").exists()

    # Removed by whichever comes first: the orphan check (an Event on the Device), or the
    # verification of "kept", which finds HAProxy reloaded behind the operator's back and
    # reloads it with the operator's files only (an Event on that VIP).
    def reported() -> bool:
        on_kept = event_messages(api, namespace, "kept", "DriftRepaired")
        return any("other/by-hand" in m for m in on_device()) or any(
            "ReloadedOutsideOperator" in m for m in on_kept
        )

    wait_for(reported, 5, "DriftRepaired about the hand-made frontend")
    assert kept.serves_all() and kept.status()["phase"] == "Active"
