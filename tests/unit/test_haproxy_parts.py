"""The HAProxy driver's parts that need no HAProxy: the runtime-change plan, the parsers of
HAProxy's answers, fencing, deadlines, fault points, the listener checks, batched file writes
and how HAProxy's error lines are pinned on VIPs."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lbaas.drivers.deadline import budget, deadline_scope
from lbaas.drivers.errors import DriverTimeout, StaleOwnerError
from lbaas.drivers.haproxy import plan, preflight, servers
from lbaas.drivers.haproxy.proxies import Backend
from lbaas.drivers.haproxy.render import fragment_servers, render_vip
from lbaas.drivers.haproxy.runtime import CLIError, ServerState, parse_servers_state
from lbaas.drivers.model import (
    HealthMonitor,
    Listener,
    LoadBalancer,
    Member,
    MonitorType,
    Persistence,
    PersistenceType,
    Pool,
    Protocol,
)
from lbaas.drivers.toolkit.fence import check_fence
from lbaas.drivers.toolkit.files import write_many
from lbaas.drivers.toolkit.pace import Pace


def member(name: str, address: str = "10.0.0.1", port: int = 80, **kw: Any) -> Member:
    return Member(name, address, port, **kw)


def lb(*members: tuple[str, dict[str, Any]], **pool: Any) -> LoadBalancer:
    return LoadBalancer(
        "ns",
        "web",
        "192.0.2.1",
        (Listener("web", 80, Protocol.HTTP, default_pool="p"),),
        (Pool("p", members=tuple(member(n, **kw) for n, kw in members), **pool),),
    )


def fragment(*members: tuple[str, dict[str, Any]], **pool: Any) -> tuple[Backend, dict[str, str]]:
    """The one backend (pool ``p``) of a load balancer, what the runtime plan works on, and its
    server lines as its fragment on disk records them."""
    rendered = render_vip(lb(*members, **pool))
    (backend,) = rendered.backends
    return backend, fragment_servers(rendered.text)[backend.name]


def running(name: str, *, port: int = 80, weight: int = 1, admin: int = 0) -> ServerState:
    return ServerState("be_ns__web__p", name, "10.0.0.1", port, 2, admin, weight, 0)


def kinds(ops: list[servers.Op] | None) -> list[str] | None:
    return None if ops is None else [op.describe() for op in ops]


# -- the runtime plan ---------------------------------------------------------------------------


def test_nothing_to_do_when_running_matches() -> None:
    want, lines = fragment(("a", {}), ("b", {"weight": 3}))
    have = {"a": running("a"), "b": running("b", weight=3)}
    assert servers.plan(want, lines, have) == []


def test_new_members_are_added_before_old_ones_go() -> None:
    want, _ = fragment(("a", {}), ("c", {}))
    _, old = fragment(("a", {}), ("b", {}))
    have = {"a": running("a"), "b": running("b")}
    assert kinds(servers.plan(want, old, have)) == [
        "add be_ns__web__p/c",
        "delete be_ns__web__p/b",
    ]


def test_a_changed_server_line_is_replaced() -> None:
    want, _ = fragment(("a", {"backup": True}))
    _, old = fragment(("a", {}))
    assert kinds(servers.plan(want, old, {"a": running("a")})) == [
        "delete be_ns__web__p/a",
        "add be_ns__web__p/a",
    ]
    moved, _ = fragment(("a", {"port": 81}))
    assert kinds(servers.plan(moved, {}, {"a": running("a")})) == [
        "delete be_ns__web__p/a",
        "add be_ns__web__p/a",
    ]


def test_weights_and_states_are_tuned_and_drift_is_undone() -> None:
    want, lines = fragment(("a", {"weight": 2}), ("b", {"admin_state_up": False}), ("c", {}))
    have = {
        "a": running("a"),
        "b": running("b"),
        "c": running("c", admin=8),  # somebody set it to DRAIN
    }
    assert kinds(servers.plan(want, lines, have)) == [
        "weight be_ns__web__p/a",
        "state be_ns__web__p/b",
        "state be_ns__web__p/c",
    ]


def test_http_cookie_backends_add_and_remove_only_by_reload() -> None:
    cookie = {"persistence": Persistence(PersistenceType.HTTP_COOKIE)}
    want, _ = fragment(("a", {}), ("b", {}), **cookie)
    assert servers.plan(want, {}, {"a": running("a")}) is None
    weight_only, _ = fragment(("a", {"weight": 4}), **cookie)
    assert kinds(servers.plan(weight_only, {}, {"a": running("a")})) == ["weight be_ns__web__p/a"]


def test_add_commands_enable_health_before_ready() -> None:
    checked, _ = fragment(("a", {}), monitor=HealthMonitor("m", MonitorType.TCP))
    (op,) = servers.plan(checked, {}, {}) or []
    assert servers._commands(op) == [
        "add server be_ns__web__p/a 10.0.0.1:80 check inter 5s rise 3 fall 3 weight 1",
        "enable health be_ns__web__p/a",
        "set server be_ns__web__p/a state ready",
    ]
    (delete,) = servers.plan(fragment()[0], {}, {"a": running("a")}) or []
    assert servers._commands(delete) == [
        "set server be_ns__web__p/a state drain",
        "set server be_ns__web__p/a state maint",
        "shutdown sessions server be_ns__web__p/a",
        "del server be_ns__web__p/a",
    ]


# -- HAProxy's answers --------------------------------------------------------------------------

SERVERS_STATE = (
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight"
    " srv_iweight srv_time_since_last_change srv_check_status srv_check_result"
    " srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn"
    " srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr"
    " srv_agent_port\n"
    "3 be 1 b1 127.3.200.1 2 0 1 1 5 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n"
    "3 be 2 b2 2001:0db8::0001 0 1 7 1 0 1 0 0 2 0 0 0 - 8081 - 0 0 - - 0\n"
    "4 other 1 x 10.0.0.1 2 0 1 1 5 15 3 4 6 0 0 0 - 80 - 0 0 - - 0\n"
)


def test_servers_state_parsing() -> None:
    parsed = parse_servers_state(SERVERS_STATE)
    assert set(parsed) == {"be", "other"}
    b1, b2 = parsed["be"]["b1"], parsed["be"]["b2"]
    assert (b1.address, b1.port, b1.weight, b1.checked, b1.in_maintenance) == (
        "127.3.200.1",
        8080,
        1,
        True,
        False,
    )
    assert (b2.address, b2.weight, b2.in_maintenance, b2.op_state) == ("2001:db8::1", 7, True, 0)
    with pytest.raises(CLIError):
        parse_servers_state("Unknown command.\n")


# -- fencing, deadlines, faults -----------------------------------------------------------------


def test_fencing(tmp_path: Path) -> None:
    owner = tmp_path / "owner.json"
    check_fence(owner, 0, "")  # unfenced: allowed, remembers nothing
    assert not owner.exists()
    check_fence(owner, 3, "agent-a")
    check_fence(owner, 3, "agent-a")
    check_fence(owner, 0, "test")
    with pytest.raises(StaleOwnerError) as err:
        check_fence(owner, 2, "agent-old")
    assert err.value.retryable and "agent-a has fence 3" in err.value.user_message
    check_fence(owner, 4, "agent-b")
    with pytest.raises(StaleOwnerError):
        check_fence(owner, 3, "agent-a")


def test_budget_follows_the_call_deadline() -> None:
    assert budget(5.0, "x") == 5.0
    with deadline_scope(time.monotonic() + 1.0):
        assert 0.9 < budget(5.0, "x") <= 1.0
        with pytest.raises(DriverTimeout) as err:
            budget(5.0, "reloading", minimum=2.0)
        assert err.value.reason == "DriverTimeout" and err.value.retryable
    with deadline_scope(time.monotonic() - 1), pytest.raises(DriverTimeout):
        budget(5.0, "x")


@pytest.mark.parametrize(("setting", "dies"), [("", False), ("b", True), ("b:2", True)])
def test_fault_points_kill_the_process(setting: str, dies: bool) -> None:
    script = (
        "from lbaas.drivers.haproxy import faults\n"
        "faults.point('a'); print('a', flush=True)\n"
        "faults.point('b'); print('b1', flush=True)\n"
        "faults.point('b'); print('b2', flush=True)\n"
    )
    env = {**os.environ, "LBAAS_FAULT_POINT": setting, "PYTHONSAFEPATH": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    expected = {"": "a b1 b2", "b": "a", "b:2": "a b1"}[setting]
    assert done.stdout.split() == expected.split()
    assert (done.returncode == -9) == dies


# -- listener checks ----------------------------------------------------------------------------


def test_proc_net_addresses() -> None:
    assert str(preflight._proc_address("0100007F")) == "127.0.0.1"
    v6 = "B80D0120000000000000000001000000"
    assert str(preflight._proc_address(v6)) == "2001:db8::1"


def test_an_address_the_host_lacks_is_not_available() -> None:
    problem = preflight.address_problem("10.99.0.1", 80)
    assert problem is not None and problem.reason == "AddressNotAvailable"
    assert not problem.retryable
    assert preflight.address_problem("127.3.250.1", 80) is None


def test_a_foreign_listener_is_in_use_and_ours_is_not() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.3.250.2", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        assert preflight._try_bind("127.3.250.2", port) == errno.EADDRINUSE
        problem = preflight.port_problem("127.3.250.2", port, ours=set())
        assert problem is not None and problem.reason == "AddressInUse"
        assert str(os.getpid()) in problem.detail and str(os.getpid()) not in problem.user_message
        assert preflight.port_problem("127.3.250.2", port, ours={os.getpid()}) is None
        assert ("127.3.250.2", port) in preflight.held_listeners({os.getpid()})
    assert preflight.port_problem("127.3.250.2", port, ours=set()) is None


def test_write_many_replaces_and_removes_files(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("old")
    (tmp_path / "keep").write_text("keep")
    texts: dict[Path, str | None] = {tmp_path / "a": "A", tmp_path / "old": None}
    texts[tmp_path / "missing"] = None  # removing what is absent is fine
    write_many(texts, 0o600)
    assert (tmp_path / "a").read_text() == "A" and (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "keep"]  # no temporary left
    write_many({tmp_path / "a": "B", tmp_path / "keep": "K"}, 0o644, durable=False)
    assert (tmp_path / "a").read_text() == "B" and (tmp_path / "keep").read_text() == "K"


def test_blame_finds_vips_by_file_staged_file_and_proxy(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    dev: Any = type("Dev", (), {"paths": type("Paths", (), {"conf_d": conf_d})()})()
    staged = {conf_d / "ns__web.cfg": conf_d / ".ns__web.cfg.x1.new"}
    alerts = [
        f"parsing [{conf_d}/.ns__web.cfg.x1.new:12] : unknown keyword 'bogus' in 'backend'",
        f"config : [{conf_d}/ns__b.example.cfg:3] : 'server be_ns__b.example__p.1/m1' : bad",
        "Proxy 'fe_other__x__x': unable to find required default_backend",
        "Starting frontend fe_ns__api__api: cannot bind socket (Address in use) [192.0.2.1:80]",
        f"parsing [{tmp_path}/haproxy.cfg:4] : not a VIP's file",
        "Fatal errors found in configuration.",
        "Proxy 'be_old__vip': a name of the 0.1 driver",
    ]
    found = plan.blame(dev, alerts, staged)
    assert found == {
        "ns/web": [alerts[0]],
        "ns/b.example": [alerts[1]],
        "other/x": [alerts[2]],
        "ns/api": [alerts[3]],
        "old/vip": [alerts[6]],
    }


def test_pace_takes_what_fits_before_the_deadline_and_learns() -> None:
    pace = Pace(fixed=1.0, per_vip=0.01)
    assert pace.take(5000) == 5000  # no deadline: everything
    with deadline_scope(time.monotonic() + 5.0):
        assert 290 <= pace.take(5000) <= 300  # (5 s x 0.8 - 1 s) / 10 ms
        assert pace.take(20) == 20
    with deadline_scope(time.monotonic() + 0.5):
        assert pace.take(20) == 1  # never nothing: one VIP is what a single apply does
    pace.take(100)
    with pace.fixed_part(reload=True):
        time.sleep(0.05)
    pace.learn(100, 0.05 + 100 * 0.002, timed_out=False)
    assert 0.04 < pace.fixed < 0.2
    assert pace.per_vip == pytest.approx(0.007)  # falls slowly: 0.7 x 10 ms, not 2 ms
    pace.learn(100, 5.0, timed_out=False)
    assert pace.per_vip > 0.04  # rises at once
    before = pace.per_vip
    pace.learn(10, 0.0, timed_out=True)
    assert pace.per_vip == 2 * before
