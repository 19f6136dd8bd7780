"""``verify`` finds what changed behind the operator's back and ``apply`` repairs it;
``orphans`` finds what no VIP asked for; ``member_statuses`` reads the device once (issue 11)."""

from __future__ import annotations

import shutil

import pytest
from dataplane.hxsupport import (
    FAST_MONITOR,
    Backends,
    Device,
    free_port_in,
    free_vip,
    get,
    make_lb,
    refused,
    spread,
    wait_for,
)

from lbaas.drivers.haproxy import verify as verify_module
from lbaas.drivers.haproxy.store import dump_tree
from lbaas.drivers.model import LoadBalancer, MemberStatus

pytestmark = pytest.mark.haproxy


@pytest.fixture(autouse=True)
def no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Device-level checks are cached for a few seconds; these tests look right away."""
    monkeypatch.setattr(verify_module, "DEVICE_CHECK_TTL", 0.0)


def kinds(device: Device, lb: LoadBalancer) -> list[str]:
    return [drift.kind for drift in device.driver.verify(device.handle, lb) or []]


def test_in_sync_is_empty_and_a_missing_vip_is_reported(device: Device, backends: Backends) -> None:
    members, vip = backends.http(2), free_vip()
    lb = make_lb(vip, members, monitor=FAST_MONITOR)
    device.driver.apply(device.handle, lb)
    assert device.driver.verify(device.handle, lb) == []
    other = make_lb(free_vip(), members, name="never-applied")
    assert set(kinds(device, other)) == {"VIPFileMissing", "ConfigMissing", "BackendMissing"}
    changed = make_lb(vip, members[:1], monitor=FAST_MONITOR)
    assert set(kinds(device, changed)) == {"VIPFileOutdated", "ConfigChanged", "RuntimeChanged"}


def test_runtime_changes_by_hand_are_found_and_undone_without_reload(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(3), free_vip()
    lb = make_lb(vip, members)
    device.driver.apply(device.handle, lb)
    reloads = device.reloads()
    device.cli("set server be_dp__web__pool/b0 weight 0")
    device.cli("set server be_dp__web__pool/b1 state maint")
    device.cli("disable frontend fe_dp__web__web")
    drifts = device.driver.verify(device.handle, lb) or []
    assert [d.kind for d in drifts] == ["RuntimeChanged", "FrontendStateChanged"]
    assert "b0 has weight 0, not 1" in drifts[0].message
    assert "b1 is in MAINT" in drifts[0].message
    device.driver.apply(device.handle, lb)
    assert device.driver.verify(device.handle, lb) == []
    assert set(spread(*vip, 30)) == {"b0", "b1", "b2"}
    assert device.reloads() == reloads


def test_servers_added_or_deleted_by_hand_are_undone(device: Device, backends: Backends) -> None:
    a, b, stranger = backends.http(3)
    vip = free_vip()
    lb = make_lb(vip, [a, b])
    device.driver.apply(device.handle, lb)
    device.cli("set server be_dp__web__pool/b1 state maint")
    device.cli("del server be_dp__web__pool/b1")
    device.cli(f"add server be_dp__web__pool/x {stranger.address}:{stranger.port}")
    device.cli("set server be_dp__web__pool/x state ready")
    (drift,) = device.driver.verify(device.handle, lb) or []
    assert "server b1 is missing" in drift.message and "server x is no member" in drift.message
    device.driver.apply(device.handle, lb)
    assert set(spread(*vip, 20)) == {"b0", "b1"}
    assert device.driver.verify(device.handle, lb) == []


def test_config_edited_and_reloaded_behind_the_operators_back(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(2), free_vip()
    lb = make_lb(vip, members)
    device.driver.apply(device.handle, lb)
    fragment = device.state_dir / "conf.d" / "dp__web.cfg"
    original = fragment.read_text()
    fragment.write_text(original.replace(f"server b1 {members[1].address}", "server b1 127.0.0.2"))
    assert kinds(device, lb) == ["ConfigChanged"]
    device.master_cli("reload")
    wait_for(lambda: "ReloadedOutsideOperator" in kinds(device, lb), timeout=5)
    reloads = device.reloads()
    device.driver.apply(device.handle, lb)
    assert device.reloads() == reloads + 1
    assert fragment.read_text() == original
    assert device.driver.verify(device.handle, lb) == []
    assert set(spread(*vip, 20)) == {"b0", "b1"}


def test_global_config_edited_by_hand(device: Device, backends: Backends) -> None:
    members, vip = backends.http(1), free_vip()
    lb = make_lb(vip, members)
    device.driver.apply(device.handle, lb)
    config = device.state_dir / "haproxy.cfg"
    original = config.read_text()
    config.write_text(original + "\nlisten extra\n    bind 127.0.0.1:1\n")
    assert kinds(device, lb) == ["ConfigChanged"]
    device.driver.apply(device.handle, lb)
    assert config.read_text() == original and device.driver.verify(device.handle, lb) == []


def test_orphans_are_found_and_deleted(device: Device, backends: Backends) -> None:
    members = backends.http(1)
    kept, left, by_hand = free_vip(), free_vip(), free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(kept, members, name="kept"))
    driver.apply(handle, make_lb(left, members, name="left-behind"))
    # A frontend added by hand in conf.d/ (no VIP file) and loaded.
    conf_d = device.state_dir / "conf.d"
    shutil.copy(conf_d / "dp__kept.cfg", conf_d / "other__by-hand.cfg")
    text = (conf_d / "other__by-hand.cfg").read_text().replace("dp__kept", "other__by-hand")
    text = text.replace(f"{kept[0]}:{kept[1]}", f"{by_hand[0]}:{by_hand[1]}")
    (conf_d / "other__by-hand.cfg").write_text(text)
    for copied in (device.state_dir / "maps").glob("fe_dp__kept__*.map"):  # its L7 maps too
        target = copied.with_name(copied.name.replace("dp__kept", "other__by-hand"))
        shutil.copy(copied, target)
    device.master_cli("reload")
    wait_for(lambda: not refused(*by_hand), timeout=5)

    found = driver.orphans(handle, ["dp/kept"])
    assert found == ["dp/left-behind", "other/by-hand"]
    for key in found:
        driver.delete(handle, key)
    assert driver.orphans(handle, ["dp/kept"]) == []
    wait_for(lambda: refused(*left) and refused(*by_hand), timeout=5)
    assert get(*kept)[1] == "b0"


def test_member_statuses_of_the_whole_device_in_one_read(
    device: Device, backends: Backends
) -> None:
    a, b, c = backends.http(3)
    lbs = [
        make_lb(free_vip(), [a, b], name="one", monitor=FAST_MONITOR),
        make_lb(free_vip(), [c], name="two", member_spec={"b2": {"weight": 0}}),
        make_lb(free_vip(), [a], name="off", pool={"admin_state_up": False}),
    ]
    for lb in lbs:
        device.driver.apply(device.handle, lb)
    b.healthy = False
    never = make_lb(free_vip(), [a], name="never")

    def statuses() -> object:
        return device.driver.member_statuses(device.handle, [*lbs, never])

    wait_for(lambda: statuses()["dp/one"]["b1"] == MemberStatus.ERROR, timeout=4)
    assert statuses() == {
        "dp/one": {"b0": MemberStatus.ONLINE, "b1": MemberStatus.ERROR},
        "dp/two": {"b2": MemberStatus.DRAINING},
        "dp/off": {"b0": MemberStatus.OFFLINE},
    }  # "never" is left out: the device cannot tell (UNKNOWN)


def test_a_vip_file_that_became_unservable_blocks_nobody(
    device: Device, backends: Backends
) -> None:
    """A VIP file whose address the host lost (here: written as if it had) is left out of
    the configuration; the other VIPs apply; verify reports it for that VIP."""
    members = backends.http(1)
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(free_vip(), members, name="first"))
    lost = make_lb(("10.99.0.1", 8080), members, name="lost")
    (device.state_dir / "vips" / "dp__lost.json").write_text(dump_tree(lost))
    second = free_vip()
    driver.apply(handle, make_lb(second, members, name="second"))
    assert get(*second)[1] == "b0"
    (drift,) = driver.verify(handle, lost) or []
    assert drift.kind == "NotServed" and "10.99.0.1 is not available" in drift.message
    assert not (device.state_dir / "conf.d" / "dp__lost.cfg").exists()
    driver.delete(handle, lost.key)
    assert driver.state(handle).parked == {}


def test_a_member_moved_in_a_reloading_apply_serves_at_once(device: Device) -> None:
    """HAProxy 2.6 takes a server's port from the server-state file over its configuration
    line: a member that moves in an apply that reloads (here with a new connection limit) must
    still serve at its new address and port right after the apply, not at the next resync."""
    backends = Backends(third=71)
    try:
        a, b, c = backends.http(3)
        vip = ("127.0.70.254", free_port_in("127.0.70.254/32"))
        device.driver.apply(device.handle, make_lb(vip, [a, b]))
        moved = make_lb(
            vip,
            [a, b],
            connection_limit=50,
            member_spec={"b1": {"address": c.address, "port": c.port}},
        )
        reloads = device.reloads()
        device.driver.apply(device.handle, moved)
        assert device.reloads() == reloads + 1
        assert device.driver.verify(device.handle, moved) == []
        assert set(spread(*vip, 20)) == {"b0", "b2"}
    finally:
        for server in backends.started:
            server.shutdown()
            server.server_close()


def test_an_admin_down_listener_is_in_sync_and_its_members_change_at_run_time(
    device: Device, backends: Backends
) -> None:
    """HAProxy 2.6 lists no frontend its file disables: absent is what the tree asks for, not
    a drift (the operator would re-apply it and post DriftRepaired at every resync)."""
    a, b = backends.http(2)
    vip = free_vip()
    down = make_lb(vip, [a], admin_state_up=False)
    device.driver.apply(device.handle, down)
    assert device.driver.verify(device.handle, down) == []
    assert refused(*vip)
    reloads = device.reloads()
    more = make_lb(vip, [a, b], admin_state_up=False)
    device.driver.apply(device.handle, more)
    assert device.driver.verify(device.handle, more) == []
    assert device.reloads() == reloads  # a member added at run time, no reload
    up = make_lb(vip, [a, b])
    device.driver.apply(device.handle, up)
    assert device.driver.verify(device.handle, up) == []
    assert set(spread(*vip, 20)) == {"b0", "b1"}
