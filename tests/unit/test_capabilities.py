"""The feature vocabulary: what a tree asks of a device, and how a missing feature is named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from lbaas.drivers import capabilities as caps
from lbaas.drivers import model as m
from lbaas.drivers.contract import DeviceHandle, Driver, ProbeResult


def lb(*listeners: m.Listener, pools: tuple[m.Pool, ...] = ()) -> m.LoadBalancer:
    return m.LoadBalancer("ns", "web", "192.0.2.1", listeners=listeners, pools=pools)


def listener(**kw: Any) -> m.Listener:
    return m.Listener(**{"name": "web", "port": 80, **kw})


def test_a_plain_tcp_tree_asks_for_l4_core_only() -> None:
    pool = m.Pool("p", members=(m.Member("a", "10.0.0.1", 80),))
    need = caps.required_features(lb(listener(default_pool="p"), pools=(pool,)))
    assert need == {"protocol.tcp", "method.round-robin"}
    assert all(caps.FEATURES[f].level == "core" for f in need)


@pytest.mark.parametrize(
    ("part", "feature"),
    [
        (listener(protocol=m.Protocol.UDP), "protocol.udp"),
        (listener(protocol=m.Protocol.HTTP), "protocol.http"),
        (listener(protocol=m.Protocol.HTTPS), "protocol.https"),
        (listener(connection_limit=10), "listener.connection-limit"),
        (listener(admin_state_up=False), "listener.admin-state"),
        (listener(forwarded_headers=True), "http.forwarded-headers"),
    ],
)
def test_each_listener_option_names_its_feature(part: m.Listener, feature: str) -> None:
    assert feature in caps.required_features(lb(part))


def cert(name: str) -> m.Certificate:
    return m.Certificate(name, "PEM", m.Sensitive(f"key of {name}"), (f"{name}.example",))


def test_tls_parts_ask_for_their_features() -> None:
    tls = m.ListenerTLS(
        (cert("a"), cert("b")),
        min_version=m.TLSVersion.TLS_1_3,
        cipher_suites=("ECDHE-RSA-AES128-GCM-SHA256",),
        alpn=("h2",),
        client_validation=m.ClientValidation(m.CABundle("ca", "PEM", "f")),
    )
    need = caps.required_features(lb(listener(protocol=m.Protocol.TERMINATED_HTTPS, tls=tls)))
    assert need >= {
        "tls.terminate",
        "tls.sni",
        "tls.min-version",
        "tls.cipher-suites",
        "tls.alpn",
        "tls.client-validation",
    }
    one = m.ListenerTLS((cert("a"),))
    alone = caps.required_features(lb(listener(protocol=m.Protocol.TERMINATED_HTTPS, tls=one)))
    assert "tls.sni" not in alone and "tls.min-version" not in alone


def test_l7_policies_and_pools_ask_for_their_features() -> None:
    policies = (
        m.L7Policy(
            "host",
            1,
            m.Match(hostnames=("a.example",), path=m.PathMatch(m.PathMatchType.REGEX, "^/x")),
            m.Action(m.ActionType.FORWARD, (m.WeightedPool("p1", 8), m.WeightedPool("p2", 2))),
            request_headers=m.HeaderChanges(remove=("x-debug",)),
        ),
        m.L7Policy("deny", 2, m.Match(method="DELETE"), m.Action(m.ActionType.REJECT)),
    )
    pools = (
        m.Pool("p1", method=m.Method.LEAST_CONNECTIONS, persistence=m.Persistence(
            m.PersistenceType.APP_COOKIE, "JSESSIONID")),
        m.Pool("p2", monitor=m.HealthMonitor("hm", m.MonitorType.HTTPS), tls=m.BackendTLS()),
        m.Pool("p3", members=(m.Member("b", "10.0.0.2", 80, weight=0, backup=True,
                                       admin_state_up=False, monitor_port=81),)),
    )  # fmt: skip
    tree = lb(listener(protocol=m.Protocol.HTTP, default_pool="p3", policies=policies),
              pools=pools)  # fmt: skip
    assert caps.required_features(tree) >= {
        "l7.host", "l7.path", "l7.regex", "l7.weighted-split", "l7.header-modifier",
        "l7.method", "l7.reject", "l7.multiple-pools", "method.least-connections",
        "persistence.app-cookie", "monitor.https", "tls.backend", "member.weight",
        "member.backup", "member.admin-state", "member.monitor-address",
    }  # fmt: skip


def test_every_feature_a_tree_can_ask_for_is_in_the_vocabulary() -> None:
    assert not caps.unknown(caps._PROTOCOL.values())
    assert not caps.unknown([*caps._METHOD.values(), *caps._PERSISTENCE.values()])
    assert not caps.unknown(caps._MONITOR.values())
    assert set(caps.FEATURES) >= caps.OPERATIONAL
    assert caps.unknown(["protocol.tcp", "protocol.sctp"]) == ["protocol.sctp"]


def test_missing_lists_only_what_the_driver_lacks() -> None:
    tree = lb(listener(protocol=m.Protocol.UDP, connection_limit=5))
    assert caps.missing(tree, {"protocol.udp", "method.round-robin"}) == [
        "listener.connection-limit"
    ]
    assert caps.described(["protocol.udp"]) == "feature protocol.udp (UDP listeners and pools)"


class TCPOnly(Driver):
    features = frozenset({"protocol.tcp", "method.round-robin"})

    def apply(self, device: DeviceHandle, lb: m.LoadBalancer) -> None:
        raise AssertionError("never called")

    def delete(self, device: DeviceHandle, key: str) -> None:
        raise AssertionError("never called")

    def probe(self, device: DeviceHandle) -> ProbeResult:
        return ProbeResult(True)

    def supports(self, lb: m.LoadBalancer, config: Mapping[str, Any]) -> str | None:
        return "names longer than 5 characters" if len(lb.name) > 5 else None


def test_why_unsupported_names_features_first_then_the_drivers_own_reason() -> None:
    driver = TCPOnly()
    assert caps.why_unsupported(driver, {}, lb(listener())) is None
    udp = caps.why_unsupported(driver, {}, lb(listener(protocol=m.Protocol.UDP)))
    assert udp == "lacks feature protocol.udp (UDP listeners and pools)"
    long = m.LoadBalancer("ns", "website", "192.0.2.1", listeners=(listener(),))
    assert caps.why_unsupported(driver, {}, long) == "names longer than 5 characters"


def test_summary_says_which_profiles_a_driver_covers() -> None:
    l4 = {f.name for f in caps.FEATURES.values() if f.profile == "L4" and f.level == "core"}
    assert caps.summary(l4) == "L4"
    assert caps.summary(l4 | {"protocol.http"}) == "L4, partly HTTP"
    assert caps.summary(set()) == "none"
    assert caps.summary(set(caps.FEATURES)) == " ".join(caps.PROFILES)
