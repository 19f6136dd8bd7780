"""The HAProxy driver against a real HAProxy and real traffic.

Each test starts its own backends and its own HAProxy (through the driver, in a private state
dir), sends traffic through a VIP on <net>.10.x (``LBAAS_TEST_NET``, see hxsupport) and checks
what the members saw.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from dataplane.hxsupport import (
    FAST_MONITOR,
    Backends,
    Device,
    Load,
    free_vip,
    get,
    haproxy_binary,
    make_lb,
    net,
    refused,
    spread,
    stop_haproxy,
    wait_for,
    within,
)

from lbaas.drivers.errors import DriverError
from lbaas.drivers.haproxy import device as device_module
from lbaas.drivers.haproxy.render import GlobalSettings, render
from lbaas.drivers.haproxy.store import dump_tree
from lbaas.drivers.model import (
    LoadBalancer,
    MemberStatus,
    Method,
    Persistence,
    PersistenceType,
    Protocol,
)
from lbaas.drivers.toolkit.process import pid_alive

pytestmark = pytest.mark.haproxy

# -- balancing ----------------------------------------------------------------------------


def test_round_robin_spreads_evenly(device: Device, backends: Backends) -> None:
    members, vip = backends.http(3), free_vip()
    device.driver.apply(device.handle, make_lb(vip, members))
    seen = spread(*vip, 300)
    assert sum(seen.values()) == 300
    assert all(within(seen[b.name], 100) for b in members), seen


def test_weights_3_to_1(device: Device, backends: Backends) -> None:
    members, vip = backends.http(2), free_vip()
    lb = make_lb(vip, members, member_spec={"b0": {"weight": 3}, "b1": {"weight": 1}})
    device.driver.apply(device.handle, lb)
    seen = spread(*vip, 400)
    assert within(seen["b0"], 300) and within(seen["b1"], 100), seen


def test_backup_serves_only_when_the_others_are_down(device: Device, backends: Backends) -> None:
    primary, secondary, backup = backends.http(3)
    vip = free_vip()
    lb = make_lb(
        vip,
        [primary, secondary, backup],
        monitor=FAST_MONITOR,
        member_spec={backup.name: {"backup": True}},
    )
    device.driver.apply(device.handle, lb)
    assert backup.name not in spread(*vip, 40)
    primary.healthy = secondary.healthy = False
    wait_for(lambda: get(*vip)[1] == backup.name, timeout=4)
    assert spread(*vip, 20) == {backup.name: 20}
    primary.healthy = True
    wait_for(lambda: get(*vip)[1] == primary.name, timeout=4)
    assert spread(*vip, 20) == {primary.name: 20}


def test_least_connections_avoids_the_busy_member(device: Device, backends: Backends) -> None:
    members, vip = backends.http(2), free_vip()
    device.driver.apply(
        device.handle, make_lb(vip, members, pool={"method": Method.LEAST_CONNECTIONS})
    )
    answers: list[int] = []
    slow = threading.Thread(
        # The backend holds it 3 s: the client waits longer (a loaded CI machine is slow).
        target=lambda: answers.append(get(*vip, path="/?sleep=3", timeout=15)[0])
    )
    slow.start()
    wait_for(lambda: any(b.active for b in members), timeout=2)
    busy = next(b for b in members if b.active)
    idle = next(b for b in members if b is not busy)
    assert spread(*vip, 20) == {idle.name: 20}
    slow.join()
    assert answers == [200]


def test_source_balancing_pins_each_client(device: Device, backends: Backends) -> None:
    members, vip = backends.http(3), free_vip()
    device.driver.apply(device.handle, make_lb(vip, members, pool={"method": Method.SOURCE_IP}))
    chosen = set()
    for client in range(1, 21):
        seen = spread(*vip, 5, source=net(30, client))
        assert len(seen) == 1, seen
        chosen |= set(seen)
    assert len(chosen) >= 2


# -- health monitoring --------------------------------------------------------------------


def test_http_monitor_takes_a_failing_member_out_and_back(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(2), free_vip()
    monitor = dataclasses.replace(
        FAST_MONITOR, max_retries=2, max_retries_down=2, expected_codes="200-204"
    )
    lb = make_lb(vip, members, monitor=monitor)
    device.driver.apply(device.handle, lb)
    sick = members[1]

    def status() -> MemberStatus:
        return device.statuses(lb)[sick.name]

    wait_for(lambda: status() == MemberStatus.ONLINE, timeout=3)
    sick.healthy = False
    took = wait_for(lambda: status() == MemberStatus.ERROR, timeout=1 * 2 + 1)
    assert took <= 3
    assert sick.name not in spread(*vip, 30)
    sick.healthy = True
    wait_for(lambda: status() == MemberStatus.ONLINE, timeout=1 * 2 + 1)
    assert sick.name in spread(*vip, 10)


def test_health_state_survives_a_reload(device: Device, backends: Backends) -> None:
    members, vip = backends.http(2), free_vip()
    lb = make_lb(vip, members, monitor=FAST_MONITOR)
    device.driver.apply(device.handle, lb)
    sick = members[1]
    sick.healthy = False
    wait_for(
        lambda: device.statuses(lb)[sick.name] == MemberStatus.ERROR,
        timeout=3,
    )
    reloads = device.driver.reload_count(device.handle)
    device.driver.apply(
        device.handle,
        dataclasses.replace(
            lb, listeners=(dataclasses.replace(lb.listeners[0], connection_limit=1000),)
        ),
    )
    assert device.driver.reload_count(device.handle) == reloads + 1
    # Without the server-state file the new worker would start the sick member as UP.
    assert sick.name not in spread(*vip, 20)


# -- persistence --------------------------------------------------------------------------


def test_source_ip_persistence(device: Device, backends: Backends) -> None:
    members, vip = backends.http(3), free_vip()
    lb = make_lb(vip, members, persistence=Persistence(PersistenceType.SOURCE_IP))
    device.driver.apply(device.handle, lb)
    chosen = set()
    for client in range(1, 7):
        seen = spread(*vip, 6, source=net(31, client))
        assert len(seen) == 1, seen
        chosen |= set(seen)
    assert len(chosen) == 3


def test_http_cookie_persistence(device: Device, backends: Backends) -> None:
    members, vip = backends.http(3), free_vip()
    device.driver.apply(
        device.handle, make_lb(vip, members, persistence=Persistence(PersistenceType.HTTP_COOKIE))
    )
    _, first, headers = get(*vip)
    assert headers.get("set-cookie", "").startswith(f"SRVID={first};")
    assert spread(*vip, 20, headers={"Cookie": f"SRVID={first}"}) == {first: 20}
    assert len(spread(*vip, 6)) == 3


def test_app_cookie_persistence(device: Device, backends: Backends) -> None:
    members, vip = backends.http(3), free_vip()
    lb = make_lb(vip, members, persistence=Persistence(PersistenceType.APP_COOKIE, "JSESSIONID"))
    device.driver.apply(device.handle, lb)
    _, owner, headers = get(*vip, "/login")
    session = headers["set-cookie"].split(";")[0]
    assert spread(*vip, 20, headers={"Cookie": session}) == {owner: 20}
    assert len(spread(*vip, 6)) == 3


# -- limits and admin state ---------------------------------------------------------------


def test_connection_limit_is_enforced(device: Device, backends: Backends) -> None:
    members, vip = backends.http(1), free_vip()
    device.driver.apply(device.handle, make_lb(vip, members, connection_limit=2))
    slow = [
        threading.Thread(target=get, args=vip, kwargs={"path": "/?sleep=1.5"}) for _ in range(2)
    ]
    for thread in slow:
        thread.start()
    wait_for(lambda: members[0].active == 2, timeout=2)
    with pytest.raises(TimeoutError):
        get(*vip, timeout=0.7)
    for thread in slow:
        thread.join()
    assert get(*vip)[0] == 200


def test_member_admin_down_and_weight_are_runtime_changes(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(2), free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, members))
    reloads = driver.reload_count(handle)
    in_flight = threading.Thread(target=get, args=vip, kwargs={"path": "/?sleep=1"})
    in_flight.start()
    wait_for(lambda: any(b.active for b in members), timeout=2)
    busy = next(b for b in members if b.active)
    other = next(b for b in members if b is not busy)

    down = make_lb(vip, members, member_spec={busy.name: {"admin_state_up": False}})
    driver.apply(handle, down)
    assert spread(*vip, 20) == {other.name: 20}
    assert device.statuses(down)[busy.name] == MemberStatus.OFFLINE
    hits = busy.hits
    in_flight.join()  # the connection it already had is served to the end
    assert busy.hits == hits and busy.active == 0

    weighted = make_lb(vip, members, member_spec={busy.name: {"weight": 3}})
    driver.apply(handle, weighted)
    seen = spread(*vip, 200)
    assert within(seen[busy.name], 150) and within(seen[other.name], 50), seen

    drained = make_lb(vip, members, member_spec={busy.name: {"weight": 0}})
    driver.apply(handle, drained)
    assert spread(*vip, 20) == {other.name: 20}
    assert device.statuses(drained)[busy.name] == MemberStatus.DRAINING
    assert driver.reload_count(handle) == reloads
    assert driver.state(handle).runtime_updates == 3
    # Written for the next reload too.
    assert f"server {busy.name} {busy.address}:{busy.port} weight 0\n" in device.fragment("web")


def test_runtime_values_survive_a_later_reload(device: Device, backends: Backends) -> None:
    a, b, c = backends.http(3)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a, b]))
    driver.apply(
        handle,
        make_lb(vip, [a, b], member_spec={"b0": {"admin_state_up": False}, "b1": {"weight": 3}}),
    )
    reloads = driver.reload_count(handle)
    # A change that needs a reload (connection limit), with a new member, undoing both
    # runtime changes: the server-state file must not bring them back.
    driver.apply(handle, make_lb(vip, [a, b, c], connection_limit=100))
    assert driver.reload_count(handle) == reloads + 1
    seen = spread(*vip, 300)
    assert all(within(seen[m.name], 100) for m in (a, b, c)), seen


def test_vip_admin_down_stops_the_vip(device: Device, backends: Backends) -> None:
    members, vip = backends.http(1), free_vip()
    device.driver.apply(device.handle, make_lb(vip, members))
    assert get(*vip)[1] == "b0"
    device.driver.apply(device.handle, make_lb(vip, members, admin_state_up=False))
    wait_for(lambda: refused(*vip), timeout=3)
    device.driver.apply(device.handle, make_lb(vip, members))
    assert get(*vip)[1] == "b0"


def test_tcp_vip_carries_raw_tcp(device: Device, backends: Backends) -> None:
    members, vip = backends.echo(2), free_vip()
    device.driver.apply(device.handle, make_lb(vip, members, protocol=Protocol.TCP))
    answers = set()
    for _ in range(4):
        with socket.create_connection(vip, timeout=2) as sock:
            sock.sendall(b"\x00\x01 not http\r\n")
            answer = sock.makefile("rb").readline()
        name, _, echoed = answer.partition(b":")
        assert echoed == b"\x00\x01 not http\r\n"
        answers.add(name)
    assert answers == {b"e0", b"e1"}


# -- safety -------------------------------------------------------------------------------


def test_an_invalid_configuration_is_never_applied(
    device: Device, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    members, vip = backends.http(1), free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, members))
    live = device.config()
    reloads = driver.reload_count(handle)
    real_render = device_module.render_vip

    def broken(lb: LoadBalancer) -> Any:
        fragment = real_render(lb)
        if lb.name != "other":
            return fragment
        return dataclasses.replace(fragment, text=fragment.text + "    bogus-keyword 1\n")

    monkeypatch.setattr(device_module, "render_vip", broken)
    other = free_vip()
    with pytest.raises(DriverError) as err:
        driver.apply(handle, make_lb(other, members, name="other"))
    assert err.value.reason == "InvalidConfiguration" and not err.value.retryable
    assert "bogus-keyword" in err.value.user_message  # HAProxy's own error line
    assert device.config() == live
    assert not (device.state_dir / "vips" / "dp__other.json").exists()
    assert driver.reload_count(handle) == reloads
    assert get(*vip)[1] == "b0"
    assert refused(*other)


def test_a_port_held_by_another_process_is_refused_before_any_reload(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(1), free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, members))
    live = device.config()
    reloads = driver.reload_count(handle)
    taken = free_vip()
    with socket.socket() as squatter:
        squatter.bind(taken)
        squatter.listen()
        with pytest.raises(DriverError) as err:
            driver.apply(handle, make_lb(taken, members, name="taken"))
    assert err.value.reason == "AddressInUse" and not err.value.retryable
    assert "another process" in err.value.user_message
    assert device.config() == live
    assert driver.reload_count(handle) == reloads
    assert not (device.state_dir / "vips" / "dp__taken.json").exists()
    assert get(*vip)[1] == "b0"


# -- lifecycle ----------------------------------------------------------------------------


def test_a_new_driver_instance_adopts_the_running_haproxy(
    make_device: Callable[..., Device], backends: Backends
) -> None:
    first = make_device()
    members, vip, vip2 = backends.http(1), free_vip(), free_vip()
    first.driver.apply(first.handle, make_lb(vip, members))
    pid = first.master_pid()
    restarted = type(first.driver)()
    probe = restarted.probe(first.handle)
    assert probe.ready and f"master pid {pid}" in probe.message
    restarted.apply(first.handle, make_lb(vip2, members, name="second"))
    assert first.master_pid() == pid
    assert restarted.state(first.handle).starts == 1
    assert get(*vip)[1] == "b0" and get(*vip2)[1] == "b0"


def test_haproxy_outlives_the_operator_process(
    make_device: Callable[..., Device], backends: Backends
) -> None:
    device = make_device()
    members, vip = backends.http(1), free_vip()
    lb = make_lb(vip, members)
    script = (
        "import json, sys\n"
        "from lbaas.drivers.contract import DeviceHandle\n"
        "from lbaas.drivers.haproxy import HAProxyDriver\n"
        "from lbaas.drivers.haproxy.store import load_tree\n"
        "handle = DeviceHandle('d', driver='haproxy', config=json.loads(sys.argv[1]))\n"
        "HAProxyDriver().apply(handle, load_tree(sys.argv[2]))\n"
    )
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            json.dumps(dict(device.handle.config)),
            dump_tree(lb),
        ],
        check=True,
        cwd="/",
        env=env,
        timeout=30,
    )
    pid = device.master_pid()
    assert pid is not None
    assert get(*vip)[1] == "b0"
    device.driver.apply(device.handle, make_lb(vip, members, connection_limit=50))
    assert device.master_pid() == pid
    state = device.driver.state(device.handle)
    assert (state.starts, state.reloads) == (1, 1)
    assert get(*vip)[1] == "b0"


def test_probe_restarts_a_dead_haproxy(device: Device, backends: Backends) -> None:
    members, vip = backends.http(1), free_vip()
    device.driver.apply(device.handle, make_lb(vip, members))
    old_pid = device.master_pid()
    stop_haproxy(device.state_dir)
    assert refused(*vip)
    probe = device.driver.probe(device.handle)
    assert probe.ready, probe.message
    assert device.master_pid() != old_pid
    assert get(*vip)[1] == "b0"  # rebuilt from the VIP files


def test_delete_removes_only_that_vip(device: Device, backends: Backends) -> None:
    members, vip, vip2 = backends.http(1), free_vip(), free_vip()
    one, two = make_lb(vip, members), make_lb(vip2, members, name="two")
    device.driver.apply(device.handle, one)
    device.driver.apply(device.handle, two)
    device.driver.delete(device.handle, one.key)
    device.driver.delete(device.handle, one.key)  # deleting what is absent succeeds
    assert not (device.state_dir / "vips" / "dp__web.json").exists()
    wait_for(lambda: refused(*vip), timeout=3)
    assert get(*vip2)[1] == "b0"


def test_unmanaged_device_needs_an_external_haproxy(
    make_device: Callable[..., Device], backends: Backends
) -> None:
    device = make_device(managed=False)
    probe = device.driver.probe(device.handle)
    assert not probe.ready and "does not answer" in probe.message
    with pytest.raises(DriverError) as err:
        device.driver.apply(device.handle, make_lb(free_vip(), backends.http(1)))
    assert err.value.retryable and err.value.reason == "HAProxyNotRunning"
    assert device.master_pid() is None
    assert list((device.state_dir / "vips").iterdir()) == []


def test_a_master_started_by_an_older_driver_is_replaced_without_a_gap(
    device: Device, backends: Backends
) -> None:
    """Before conf.d/, the whole configuration was haproxy.cfg and the master ran with
    ``-f haproxy.cfg``: its reload would drop every VIP. It is replaced by a new master (both
    bind with SO_REUSEPORT), then soft-stopped."""
    members, vip = backends.http(1), free_vip()
    lb = make_lb(vip, members)
    state = device.state_dir
    settings = GlobalSettings(
        str(state / "haproxy.sock"), str(state / "server-state"), state_dir=str(state)
    )
    rendered = render([lb], settings)
    (state / "haproxy.cfg").write_text(rendered.text)
    (state / "maps").mkdir()
    for entries in rendered.fragments[0].maps:  # an HTTP listener's L7 maps (issue 20)
        (state / entries.name).write_text(entries.text)
    (state / "server-state").write_text("1\n")
    (state / "vips").mkdir()
    (state / "vips" / "dp__web.json").write_text(dump_tree(lb))
    argv = [haproxy_binary(), "-W", "-S", f"{state}/master.sock", "-p", f"{state}/haproxy.pid"]
    subprocess.Popen(
        [*argv, "-f", f"{state}/haproxy.cfg"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: not refused(*vip), timeout=5)
    old = device.master_pid()
    assert [d.kind for d in device.driver.verify(device.handle, lb) or []][:1] == [
        "ReloadedOutsideOperator"
    ]
    with Load(*vip) as load:
        device.driver.apply(device.handle, lb)
        wait_for(lambda: old is not None and not pid_alive(old), timeout=10)
    assert load.failures == [] and load.sent > 10
    assert device.master_pid() != old
    assert device.driver.verify(device.handle, lb) == []
