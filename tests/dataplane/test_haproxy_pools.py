"""Several pools per load balancer, and a device upgraded in place from the 0.1 driver, against
a real HAProxy and real traffic.

Each pool is its own backend: the listener's default pool takes the traffic, switching it is
one hitless reload, and member changes in a pool the listener does not use (yet) are runtime
changes like any other. A device whose files the 0.1 driver wrote keeps serving and is
rendered again once.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
from collections.abc import Sequence

import pytest
from dataplane.hxsupport import (
    FAST_MONITOR,
    Backend,
    Backends,
    Device,
    Load,
    free_vip,
    get,
    haproxy_binary,
    members_of,
    refused,
    spread,
    wait_for,
)

from lbaas.drivers.haproxy.render import GlobalSettings, render_global
from lbaas.drivers.haproxy.store import DriverState
from lbaas.drivers.model import (
    Listener,
    LoadBalancer,
    MemberStatus,
    Method,
    Pool,
    Protocol,
)

pytestmark = pytest.mark.haproxy


def two_pools(
    vip: tuple[str, int],
    blue: Sequence[Backend],
    green: Sequence[Backend],
    default: str | None = "blue",
    protocol: Protocol = Protocol.HTTP,
) -> LoadBalancer:
    """``dp/web`` with pools ``blue`` (HTTP check) and ``green`` (least connections)."""
    return LoadBalancer(
        "dp",
        "web",
        vip[0],
        (Listener("web", vip[1], protocol, default_pool=default),),
        (
            Pool("blue", members=members_of(blue), monitor=FAST_MONITOR),
            Pool("green", method=Method.LEAST_CONNECTIONS, members=members_of(green)),
        ),
    )


def running_servers(device: Device, backend: str) -> set[str]:
    lines = device.cli(f"show servers state {backend}").splitlines()[2:]
    return {line.split()[3] for line in lines if line.strip()}


def test_the_default_pool_serves_switching_it_is_hitless_and_the_other_pool_changes_at_run_time(
    device: Device, backends: Backends
) -> None:
    b0, b1, b2, g0 = backends.http(4)
    for backend, name in ((b0, "blue-0"), (b1, "blue-1"), (b2, "blue-2"), (g0, "green-0")):
        backend.name = name  # each answers its member's name
    driver, handle, vip = device.driver, device.handle, free_vip()
    lb = two_pools(vip, [b0, b1], [g0])
    driver.apply(handle, lb)
    assert set(spread(*vip, 20)) == {"blue-0", "blue-1"}
    assert driver.verify(handle, lb) == []
    reloads = device.reloads()

    green = two_pools(vip, [b0, b1], [g0], default="green")
    with Load(*vip) as load:
        driver.apply(handle, green)
        wait_for(lambda: get(*vip)[1] == "green-0", timeout=5)
    assert load.failures == [] and load.sent > 5, load.failures[:5]
    assert set(load.seen) <= {"blue-0", "blue-1", "green-0"}
    assert device.reloads() == reloads + 1  # the listener changed: one reload
    assert spread(*vip, 10) == {"green-0": 10}
    assert driver.verify(handle, green) == []

    # blue is not the listener's pool now: a member added there is a runtime change.
    grown = two_pools(vip, [b0, b1, b2], [g0], default="green")
    updates = driver.state(handle).runtime_updates
    driver.apply(handle, grown)
    assert device.reloads() == reloads + 1
    assert driver.state(handle).runtime_updates == updates + 1
    assert running_servers(device, "be_dp__web__blue") == {"blue-0", "blue-1", "blue-2"}
    assert running_servers(device, "be_dp__web__green") == {"green-0"}
    assert spread(*vip, 10) == {"green-0": 10}
    assert driver.verify(handle, grown) == []
    wait_for(lambda: device.statuses(grown)["blue-2"] == MemberStatus.ONLINE, timeout=4)
    assert device.statuses(grown) == {
        "blue-0": MemberStatus.ONLINE,
        "blue-1": MemberStatus.ONLINE,
        "blue-2": MemberStatus.ONLINE,
        "green-0": MemberStatus.NO_MONITOR,
    }

    # And a member removed from the pool in use, at run time too.
    back = two_pools(vip, [b0, b1, b2], [], default="blue")
    driver.apply(handle, back)
    assert device.reloads() == reloads + 2  # the switch back
    assert set(spread(*vip, 30)) == {"blue-0", "blue-1", "blue-2"}
    shrunk = two_pools(vip, [b1, b2], [], default="blue")
    driver.apply(handle, shrunk)
    assert device.reloads() == reloads + 2
    assert set(spread(*vip, 20)) == {"blue-1", "blue-2"}
    assert driver.verify(handle, shrunk) == []


@pytest.mark.parametrize("protocol", [Protocol.HTTP, Protocol.TCP])
def test_a_listener_without_default_pool_answers_503_or_closes(
    device: Device, backends: Backends, protocol: Protocol
) -> None:
    (b0,) = backends.http(1)
    driver, handle, vip = device.driver, device.handle, free_vip()
    lb = two_pools(vip, [b0], [], default=None, protocol=protocol)
    driver.apply(handle, lb)
    assert not refused(*vip)
    if protocol == Protocol.HTTP:
        assert get(*vip)[0] == 503
    else:
        with socket.create_connection(vip, timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(100) == b""  # closed without an answer
    assert driver.verify(handle, lb) == []
    assert running_servers(device, "be_dp__web__blue") == {"b0"}  # the pool is there
    driver.apply(handle, dataclasses.replace(lb, listeners=(
        dataclasses.replace(lb.listeners[0], default_pool="blue"),)))  # fmt: skip
    assert get(*vip)[1] == "b0"


def test_delete_and_orphans_take_every_pool(device: Device, backends: Backends) -> None:
    (b0, g0) = backends.http(2)
    driver, handle, vip = device.driver, device.handle, free_vip()
    driver.apply(handle, two_pools(vip, [b0], [g0]))
    assert driver.orphans(handle, []) == ["dp/web"]
    assert driver.orphans(handle, ["dp/web"]) == []
    driver.delete(handle, "dp/web")
    wait_for(lambda: refused(*vip), timeout=3)
    assert "be_dp__web" not in device.cli("show backend")
    assert driver.orphans(handle, []) == []


# -- a device upgraded in place from the 0.1 driver ------------------------------------------


def v01_files(vip: tuple[str, int], members: Sequence[Backend]) -> tuple[str, str]:
    """(VIP file, conf.d fragment) of VIP dp/web as the 0.1 driver wrote them."""
    tree = {
        "address": vip[0],
        "members": [
            {"name": b.name, "spec": {"address": b.address, "adminStateUp": True,
             "backup": False, "poolRef": "pool", "port": b.port, "weight": 1}}
            for b in members
        ],
        "monitor": None,
        "monitorName": None,
        "name": "web",
        "namespace": "dp",
        "pool": {"adminStateUp": True, "lbMethod": "ROUND_ROBIN", "protocol": "HTTP",
                 "vipRef": "web"},
        "poolName": "pool",
        "spec": {"adminStateUp": True, "connectionLimit": -1, "port": vip[1], "protocol": "HTTP"},
    }  # fmt: skip
    servers = "".join(f"    server {b.name} {b.address}:{b.port} weight 1\n" for b in members)
    fragment = (
        "# lbaas-operator VIP fragment, do not edit; structure=" + "0" * 64 + "\n"
        f"frontend fe_dp__web\n    mode http\n    bind {vip[0]}:{vip[1]}\n"
        "    default_backend be_dp__web\n\n"
        f"backend be_dp__web\n    mode http\n    balance roundrobin\n{servers}"
    )
    return json.dumps(tree, indent=1, sort_keys=True) + "\n", fragment


def core_tree(vip: tuple[str, int], members: Sequence[Backend]) -> LoadBalancer:
    """What the core now sends for the same VIP, Pool and Members."""
    return LoadBalancer(
        "dp",
        "web",
        vip[0],
        (Listener("web", vip[1], Protocol.HTTP, default_pool="pool"),),
        (Pool("pool", Protocol.HTTP, members=members_of(members)),),
    )


def write_v01_device(device: Device, vip: tuple[str, int], members: Sequence[Backend]) -> None:
    state = device.state_dir
    vip_file, fragment = v01_files(vip, members)
    (state / "vips").mkdir()
    (state / "conf.d").mkdir()
    (state / "vips" / "dp__web.json").write_text(vip_file)
    (state / "conf.d" / "dp__web.cfg").write_text(fragment)
    settings = GlobalSettings(str(state / "haproxy.sock"), str(state / "server-state"))
    (state / "haproxy.cfg").write_text(render_global(settings))
    (state / "server-state").write_text("1\n")


def test_a_running_0_1_device_keeps_serving_and_is_rendered_again_once(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(2), free_vip()
    state = device.state_dir
    write_v01_device(device, vip, members)
    subprocess.Popen(
        [haproxy_binary(), "-W", "-S", f"{state}/master.sock", "-p", f"{state}/haproxy.pid",
         "-f", f"{state}/haproxy.cfg", "-f", f"{state}/conf.d"],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: not refused(*vip) and device.master_pid() is not None, timeout=5)
    pid = device.master_pid()
    assert pid is not None
    # What the 0.1 driver left in driver-state.json after it started this master.
    DriverState(starts=1, master_pid=pid, master_reloads=0).save(state / "driver-state.json")

    lb = core_tree(vip, members)
    driver, handle = device.driver, device.handle
    assert driver.probe(handle).ready
    assert {d.kind for d in driver.verify(handle, lb) or []} == {
        "VIPFileOutdated",
        "ConfigChanged",
        "BackendMissing",  # be_dp__web__pool: the running process has the 0.1 names
    }
    assert driver.orphans(handle, ["dp/web"]) == []  # its old proxies are known as dp/web
    with Load(*vip) as load:
        driver.apply(handle, lb)
        seen = spread(*vip, 20)
    assert load.failures == [] and load.sent > 5, load.failures[:5]
    assert set(seen) == {"b0", "b1"}
    assert (device.reloads(), driver.state(handle).starts) == (1, 1)  # one reload, same master
    assert device.master_pid() == pid
    assert json.loads((state / "vips" / "dp__web.json").read_text())["version"] == 1
    assert "backend be_dp__web__pool" in device.fragment("web")
    assert driver.verify(handle, lb) == []
    driver.apply(handle, lb)
    assert device.reloads() == 1


def test_a_stopped_0_1_device_starts_again_from_its_files(
    device: Device, backends: Backends
) -> None:
    members, vip = backends.http(2), free_vip()
    write_v01_device(device, vip, members)
    driver, handle = device.driver, device.handle
    probe = driver.probe(handle)  # the restarted operator's first call
    assert probe.ready, probe.message
    assert set(spread(*vip, 20)) == {"b0", "b1"}
    lb = core_tree(vip, members)
    assert [d.kind for d in driver.verify(handle, lb) or []] == ["VIPFileOutdated"]
    driver.apply(handle, lb)
    assert driver.verify(handle, lb) == [] and device.reloads() == 0
