"""Data-plane traffic: HAProxy's ``show stat`` as the contract's counters
(``drivers.haproxy.stats``) and the agents' exporter (``lbaas.traffic``): names and labels of
docs/metrics.md, counters monotonic across data-plane reloads, series gone with their VIP or
device, member series switched off."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lbaas.drivers.contract import LoadBalancerStats, TrafficStats
from lbaas.drivers.haproxy import stats
from lbaas.drivers.model import Listener, LoadBalancer, Member, Pool, Protocol
from lbaas.traffic import TrafficExporter

HEADER = (
    "# pxname,svname,qcur,scur,stot,bin,bout,dreq,ereq,econ,eresp,type,rtime,hrsp_1xx,hrsp_2xx,"
    "hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,req_tot,dcon,dses,mode"
)


def lb(name: str = "web", protocol: Protocol = Protocol.HTTP) -> LoadBalancer:
    members = (Member("m1", "10.0.0.1", 80), Member("m2", "10.0.0.2", 80))
    return LoadBalancer(
        "team", name, "10.1.0.1",
        listeners=(Listener(name, 80, protocol, default_pool="p"),),
        pools=(Pool("p", protocol=protocol, members=members),),
    )  # fmt: skip


def show_stat(mode: str = "http", scale: int = 1) -> str:
    def row(px: str, sv: str, kind: int, reqs: int, rtime: str = "") -> str:
        n = reqs * scale
        return (f"{px},{sv},0,2,{n + 1},{100 * n},{200 * n},1,2,3,4,{kind},{rtime},0,{n},0,1,2,0,"
                f"{n},5,6,{mode}")  # fmt: skip

    return "\n".join([
        HEADER,
        row("fe_team__web__web", "FRONTEND", 0, 10),
        row("be_team__web__p", "m1", 2, 6, "12"),
        row("be_team__web__p", "m2", 2, 4, "8"),
        row("be_team__web__p", "BACKEND", 1, 10, "10"),
        row("fe_other__x__x", "FRONTEND", 0, 99),
    ]) + "\n"  # fmt: skip


def test_show_stat_as_the_contract_counters() -> None:
    found = stats.device_stats([lb(), lb("gone")], show_stat(), restarts=3)
    assert set(found) == {"team/web"}, "a VIP the device does not serve has no counters"
    got = found["team/web"]
    listener = got.listeners["web"]
    assert listener.requests == 10 and listener.bytes_in == 1000 and listener.bytes_out == 2000
    assert listener.responses == {"1xx": 0, "2xx": 10, "3xx": 0, "4xx": 1, "5xx": 2, "other": 0}
    assert listener.connection_errors == 1 + 2 + 5 + 6  # dreq, ereq, dcon, dses
    assert listener.response_time_ms is None and listener.current_sessions == 2
    assert got.pools["p"].connection_errors == 3 + 4 and got.pools["p"].response_time_ms == 10
    assert got.members["m1"].requests == 6 and got.members["m2"].response_time_ms == 8
    assert {t.restarts for t in (listener, got.pools["p"], got.members["m1"])} == {3}


def test_tcp_counts_connections_and_no_response_classes() -> None:
    text = show_stat("tcp").replace(",10,5,6,tcp", ",,5,6,tcp").replace(",6,5,6,tcp", ",,5,6,tcp")
    got = stats.device_stats([lb(protocol=Protocol.TCP)], text, 0)["team/web"]
    assert got.listeners["web"].requests == 11  # stot: sessions
    assert got.listeners["web"].responses == {}
    assert got.pools["p"].response_time_ms is None


def scrape(exporter: TrafficExporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(exporter)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return found[(name, tuple(sorted(labels.items())))]


def test_the_exporter_names_and_labels() -> None:
    exporter = TrafficExporter()
    exporter.update("dev", [lb()], stats.device_stats([lb()], show_stat(), 0), at=1234.5)
    found = scrape(exporter)
    web = {"namespace": "team", "vip": "web"}
    assert value(found, "lbaas_vip_requests_total", **web, listener="web") == 10
    assert value(found, "lbaas_vip_responses_total", **web, listener="web", **{"class": "5xx"}) == 2
    assert value(found, "lbaas_pool_bytes_out_total", **web, pool="p") == 2000
    assert value(found, "lbaas_member_requests_total", **web, pool="p", member="m2") == 4
    assert value(found, "lbaas_member_response_time_seconds", **web, pool="p", member="m1") == 0.012
    assert value(found, "lbaas_vip_current_sessions", **web, listener="web") == 2
    assert value(found, "lbaas_traffic_stats_timestamp_seconds", device="dev") == 1234.5
    assert not [k for k in found if k[0] == "lbaas_vip_response_time_seconds"], "not known"


def test_counters_stay_monotonic_across_reloads() -> None:
    exporter = TrafficExporter()
    one = [lb()]
    exporter.update("dev", one, stats.device_stats(one, show_stat(scale=3), 0), at=1)
    # A reload: a new worker counts from zero (restarts says so), a little traffic since.
    exporter.update("dev", one, stats.device_stats(one, show_stat(scale=1), 1), at=2)
    found = scrape(exporter)
    assert value(found, "lbaas_vip_requests_total", namespace="team", vip="web",
                 listener="web") == 30 + 10  # fmt: skip
    # A drop the driver did not report (a restart it missed) counts as one too: the series
    # never goes down, and grows again from there.
    for scale, total in ((0, 40), (1, 50)):
        exporter.update("dev", one, stats.device_stats(one, show_stat(scale=scale), 1), at=3)
        found = scrape(exporter)
        assert value(found, "lbaas_vip_requests_total", namespace="team", vip="web",
                     listener="web") == total  # fmt: skip
    # Gauges are not offset.
    assert value(found, "lbaas_vip_current_sessions", namespace="team", vip="web",
                 listener="web") == 2  # fmt: skip


def test_series_go_with_their_vip_and_device_and_member_series_can_be_off() -> None:
    exporter = TrafficExporter()
    both = [lb(), lb("api")]
    counters = {
        "team/web": stats.device_stats([lb()], show_stat(), 0)["team/web"],
        "team/api": LoadBalancerStats(listeners={"api": TrafficStats(requests=5)}),
    }
    exporter.update("dev", both, counters, at=1)
    assert value(scrape(exporter), "lbaas_vip_requests_total", namespace="team", vip="api",
                 listener="api") == 5  # fmt: skip
    exporter.update("dev", [lb()], counters, at=2)  # api left the device
    assert not [k for k in scrape(exporter) if ("vip", "api") in k[1]]
    exporter.level = "pool"
    exporter.update("dev", [lb()], counters, at=3)
    names = {k[0] for k in scrape(exporter)}
    assert "lbaas_pool_requests_total" in names
    assert not [n for n in names if n.startswith("lbaas_member_")]
    exporter.forget("dev")
    assert scrape(exporter) == {}
