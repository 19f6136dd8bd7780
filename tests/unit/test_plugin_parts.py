"""The kubectl plugin's pure parts: tables, reason lists, metric parsing and rates."""

from __future__ import annotations

from lbaas.plugin.output import table
from lbaas.plugin.top import Reading, parse, rates
from lbaas.plugin.why import exclusions, verdict

TEXT = """\
# TYPE lbaas_vip_requests_total counter
lbaas_vip_requests_total{namespace="a",vip="web",listener="http"} 100
lbaas_vip_requests_total{namespace="a",vip="web",listener="https"} 50
# TYPE lbaas_vip_responses_total counter
lbaas_vip_responses_total{namespace="a",vip="web",listener="http",class="5xx"} 4
lbaas_vip_responses_total{namespace="a",vip="web",listener="http",class="2xx"} 96
# TYPE lbaas_vip_current_sessions gauge
lbaas_vip_current_sessions{namespace="a",vip="web",listener="http"} 3
lbaas_vip_current_sessions{namespace="a",vip="web",listener="https"} 2
# TYPE lbaas_vip_response_time_seconds gauge
lbaas_vip_response_time_seconds{namespace="a",vip="web",listener="http"} 0.02
lbaas_vip_response_time_seconds{namespace="a",vip="web",listener="https"} 0.05
# TYPE lbaas_traffic_stats_timestamp_seconds gauge
lbaas_traffic_stats_timestamp_seconds{device="d1"} 1000
lbaas_traffic_stats_timestamp_seconds{device="d2"} 990
"""


def test_table_aligns_and_marks_empty_cells() -> None:
    text = table(["A", "LONGER"], [["x", None], ["wide-cell", "y"]])
    assert text.splitlines() == ["A           LONGER", "x           -", "wide-cell   y"]


def test_parse_sums_listeners_and_keeps_the_newest_stats_time() -> None:
    reading = parse(TEXT, at=5.0)
    assert reading.counters[("a", "web")] == {"requests": 150, "5xx": 4}
    assert reading.gauges[("a", "web")] == {"sessions": 5, "rt": 0.05}
    assert reading.stamp == 1000


def test_rates_divide_by_the_stats_time_and_refuse_resets() -> None:
    first = Reading({("a", "web"): {"requests": 100.0, "5xx": 10.0}}, {}, stamp=1000, at=0.0)
    second = Reading({("a", "web"): {"requests": 150.0, "5xx": 2.0}}, {("a", "web"): {"rt": 0.1}},
                     stamp=1005, at=1.0)  # fmt: skip
    assert rates(first, second) == {("a", "web"): {"requests": 10.0, "5xx": None, "rt": 0.1}}
    # Without a stats time: the time between the reads.
    no_stamp = Reading({("a", "web"): {"requests": 120.0}}, {}, stamp=None, at=2.0)
    assert rates(Reading(first.counters, {}, None, 0.0), no_stamp)[("a", "web")]["requests"] == 10


def test_exclusions_split_the_scheduler_messages() -> None:
    assert exclusions("no eligible device among the 3 open to namespace a: 2 full, 1 NotReady") == [
        "2 full", "1 NotReady"]  # fmt: skip
    assert exclusions("address 10.0.0.1 in use on d1; address 10.0.0.1 in use on d2") == [
        "address 10.0.0.1 in use on d1", "address 10.0.0.1 in use on d2"]  # fmt: skip
    assert exclusions("no Device exists; create one (kubectl get devices)") == [
        "no Device exists", "create one (kubectl get devices)"]  # fmt: skip


def test_verdict_names_the_deepest_trouble() -> None:
    links = [
        {"kind": "Member", "name": "m", "phase": "Pending"},
        {"kind": "VIP", "name": "v", "phase": "Pending", "reason": "DeviceNotReady"},
        {"kind": "Device", "name": "d", "phase": "NotReady", "reason": "ProbeFailed"},
        {"kind": "Lease", "name": "l", "holder": "a"},
    ]
    assert verdict(links) == "Device d is NotReady (ProbeFailed)"
    assert verdict([*links[:3], {"kind": "Lease", "name": "l", "holder": ""}]) == (
        "no agent drives the device")  # fmt: skip
    assert verdict([{"kind": "VIP", "name": "v", "phase": "Active"}]).startswith("nothing wrong")


def test_why_text_says_when_no_device_is_visible() -> None:
    from lbaas.plugin.cli import why_text

    links = [{"kind": "VIP", "name": "v", "phase": "Error", "reason": "NoEligibleDevice",
              "message": "no Device exists; create one", "devices": []}]  # fmt: skip
    text = why_text(links)
    assert text.splitlines()[0] == "why: VIP v is Error (NoEligibleDevice)"
    assert "no Device exists, or none you may read" in text
