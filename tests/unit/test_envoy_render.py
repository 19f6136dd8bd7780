"""The Envoy driver's rendering (pure): value checks, routes, clusters, endpoints, TLS chains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lbaas.drivers.envoy.render import checks
from lbaas.drivers.envoy.render.clusters import render_cluster, render_endpoints
from lbaas.drivers.envoy.render.routes import render_route_config
from lbaas.drivers.envoy.render.tree import render_tree
from lbaas.drivers.envoy.store import dump_tree, load_tree
from lbaas.drivers.model import (
    Action,
    ActionType,
    Certificate,
    Header,
    HeaderChanges,
    L7Policy,
    Listener,
    ListenerTLS,
    LoadBalancer,
    Match,
    Member,
    Method,
    PathMatch,
    PathMatchType,
    Persistence,
    PersistenceType,
    Pool,
    Protocol,
    Sensitive,
    WeightedPool,
)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"


def _lb(*policies: L7Policy, pool: Pool | None = None, **listener: object) -> LoadBalancer:
    return LoadBalancer(
        "ns", "web", "127.0.0.1",
        listeners=(Listener("l", 80, Protocol.HTTP, default_pool="p", policies=policies,
                            **listener),),  # type: ignore[arg-type]
        pools=(pool or Pool("p", members=(Member("m", "10.0.0.1", 80),)),),
    )  # fmt: skip


def _forward(match: Match, name: str = "r") -> L7Policy:
    return L7Policy(name, 1, match, Action(ActionType.FORWARD, pools=(WeightedPool("p"),)))


@pytest.mark.parametrize("pattern", ["(?=x)", "(a)\\1", "x" * 2000, "(a{1000}){1000}"])
def test_regexes_re2_would_refuse_are_refused(pattern: str) -> None:
    with pytest.raises(checks.InvalidValue) as caught:
        checks.regex("policy r path", pattern)
    assert caught.value.reason == "InvalidConfiguration" and not caught.value.retryable
    checks.regex("policy r path", "^/api/v[0-9]+/.*$")


def test_header_values_and_names_are_checked_and_escaped() -> None:
    with pytest.raises(checks.InvalidValue):
        checks.header_name("h", "bad header")
    with pytest.raises(checks.InvalidValue):
        checks.header_name("h", "Host", modified=True)
    with pytest.raises(checks.InvalidValue):
        checks.header_value("h", "a\r\nb")
    changes = HeaderChanges(set=(Header("X-A", "50%"),), remove=("X-B",))
    policy = L7Policy("r", 1, Match(), Action(ActionType.FORWARD, pools=(WeightedPool("p"),)),
                      request_headers=changes)  # fmt: skip
    route = render_route_config(_lb(policy), _lb(policy).listeners[0], "n")["virtual_hosts"][0]
    added = route["routes"][0]["request_headers_to_add"][0]
    assert added["header"] == {"key": "x-a", "value": "50%%"}
    assert route["routes"][0]["request_headers_to_remove"] == ["x-b"]


def test_virtual_hosts_hold_every_policy_that_covers_them_in_order() -> None:
    wild = _forward(Match(hostnames=("*.example.com",)), "wild")
    exact = _forward(Match(hostnames=("a.example.com",)), "exact")
    anyhost = _forward(Match(path=PathMatch(PathMatchType.PREFIX, "/api/")), "any")
    lb = _lb(wild, exact, anyhost)
    hosts = render_route_config(lb, lb.listeners[0], "n")["virtual_hosts"]
    routes = {h["name"]: [r["name"] for r in h["routes"]] for h in hosts}
    assert routes == {
        "*.example.com": ["wild", "any", "default"],
        "a.example.com": ["wild", "exact", "any", "default"],
        "any": ["any", "default"],
    }
    prefix = hosts[-1]["routes"][0]["match"]
    assert prefix == {"path_separated_prefix": "/api"}


def test_no_default_pool_answers_503() -> None:
    lb = _lb()
    listener = Listener("l", 80, Protocol.HTTP)
    config = render_route_config(lb, listener, "n")
    assert config["virtual_hosts"][0]["routes"] == [
        {"name": "default", "match": {"prefix": "/"}, "direct_response": {"status": 503}}
    ]
    assert config["validate_clusters"] is False


def test_endpoints_weights_backups_and_admin_state() -> None:
    pool = Pool("p", members=(
        Member("a", "10.0.0.1", 80, weight=3), Member("b", "10.0.0.2", 80, weight=0),
        Member("c", "10.0.0.3", 80, backup=True), Member("d", "10.0.0.4", 80, admin_state_up=False),
    ))  # fmt: skip
    eds = render_endpoints(_lb(pool=pool), pool)
    levels = eds["endpoints"]
    assert [e["endpoint"]["hostname"] for e in levels[0]["lb_endpoints"]] == ["a", "b"]
    assert levels[0]["lb_endpoints"][0]["load_balancing_weight"] == 3
    assert levels[0]["lb_endpoints"][1]["health_status"] == "DRAINING"
    assert (
        levels[1]["priority"] == 1 and levels[1]["lb_endpoints"][0]["endpoint"]["hostname"] == "c"
    )
    down = Pool("p", admin_state_up=False, members=pool.members)
    assert render_endpoints(_lb(pool=down), down)["endpoints"] == [{"lb_endpoints": []}]


def test_cluster_policies() -> None:
    sticky = Pool("p", persistence=Persistence(PersistenceType.HTTP_COOKIE))
    assert render_cluster(_lb(pool=sticky), sticky, "/e")["lb_policy"] == "MAGLEV"
    least = Pool("p", method=Method.LEAST_CONNECTIONS)
    policy = render_cluster(_lb(pool=least), least, "/e")["load_balancing_policy"]
    assert policy["policies"][0]["typed_extension_config"]["typed_config"]["selection_method"] == (
        "FULL_SCAN"
    )
    cluster = render_cluster(_lb(), _lb().pools[0], "/e")
    assert cluster["common_lb_config"] == {
        "healthy_panic_threshold": {"value": 0},
        "update_merge_window": "0s",  # a member's first passed check serves at once, not in 1 s
    }
    assert cluster["ignore_health_on_host_removal"] is True


def test_sni_names_go_to_the_first_certificate_that_has_them() -> None:
    first = Certificate("one", PEM, Sensitive(KEY), ("a.test", "b.test"))
    second = Certificate("two", PEM, Sensitive(KEY), ("b.test", "c.test"))
    lb = LoadBalancer(
        "ns",
        "tls",
        "127.0.0.1",
        listeners=(
            Listener("l", 443, Protocol.TERMINATED_HTTPS, tls=ListenerTLS((first, second))),
        ),
    )
    rendered = render_tree(lb, eds_dir=Path("/e"), sds_dir=Path("/s"))
    listener = rendered.listeners[0]
    names = [c["filter_chain_match"]["server_names"] for c in listener["filter_chains"]]
    assert names == [["a.test", "b.test"], ["c.test"]]
    assert listener["default_filter_chain"]["name"] == "default"
    assert "secret" in json.dumps(rendered.secrets)  # the SDS file holds the key ...
    stored = load_tree(dump_tree(lb))
    assert "secret" not in dump_tree(lb)  # ... the tree file does not
    again = render_tree(stored, eds_dir=Path("/e"), sds_dir=Path("/s"))
    assert set(again.secrets.values()) == {None}  # a stored tree keeps the files on disk
    assert again.listeners == rendered.listeners


def test_names_too_long_for_file_names_are_refused_before_any_file() -> None:
    from lbaas.drivers.envoy import EnvoyDriver
    from lbaas.drivers.envoy.render.names import MAX_FILE_NAME, file_names

    def lb(name: str, pool: str) -> LoadBalancer:
        return LoadBalancer("ns", name, "127.0.0.1",
                            listeners=(Listener("l", 80, Protocol.HTTP, default_pool=pool),),
                            pools=(Pool(pool),))  # fmt: skip

    # ns__<name>__<pool>.json: 2 + 2 + 2 + 5 bytes besides the names.
    fits = lb("n" * 117, "p" * (MAX_FILE_NAME - 128))
    assert max(len(n) for n in file_names(fits)) == MAX_FILE_NAME
    assert EnvoyDriver().supports(fits, {}) is None
    render_tree(fits, eds_dir=Path("/eds"), sds_dir=Path("/sds"))
    over = lb("n" * 118, "p" * (MAX_FILE_NAME - 128))
    why = EnvoyDriver().supports(over, {})
    assert why is not None and f"{MAX_FILE_NAME + 1} bytes, at most {MAX_FILE_NAME}" in why
    with pytest.raises(checks.InvalidValue, match="use shorter names"):
        render_tree(over, eds_dir=Path("/eds"), sds_dir=Path("/sds"))


def _tls_lb(tls: ListenerTLS) -> LoadBalancer:
    listener = Listener("l", 443, Protocol.TERMINATED_HTTPS, default_pool="p", tls=tls)
    return LoadBalancer("ns", "web", "127.0.0.1", listeners=(listener,), pools=(Pool("p"),))


def test_client_validation_renders_the_ca_and_the_subject_header_and_refuses_fallback() -> None:
    from lbaas.drivers.model import CABundle, ClientValidation, ClientValidationMode

    ca = CABundle("ca", PEM, "f")
    cert = Certificate("c", PEM, Sensitive(KEY), ("a.test",))
    tls = ListenerTLS((cert,), client_validation=ClientValidation(ca, subject_header="X-Sub"))
    rendered = render_tree(_tls_lb(tls),
                           eds_dir=Path("/eds"), sds_dir=Path("/sds"))  # fmt: skip
    (listener,) = rendered.listeners
    context = listener["default_filter_chain"]["transport_socket"]["typed_config"]
    assert context["require_client_certificate"] is True
    assert context["common_tls_context"]["validation_context"]["trusted_ca"] == {
        "inline_string": PEM
    }
    hcm = listener["default_filter_chain"]["filters"][0]["typed_config"]
    assert hcm["route_config"]["request_headers_to_add"] == [
        {"header": {"key": "X-Sub", "value": "%DOWNSTREAM_PEER_SUBJECT%"},
         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
    ]  # fmt: skip
    assert listener["stat_prefix"] == "ns/web/l"
    fallback = ClientValidation(ca, ClientValidationMode.ALLOW_INSECURE_FALLBACK)
    with pytest.raises(checks.InvalidValue, match="AllowInsecureFallback cannot be served"):
        render_tree(
            _tls_lb(ListenerTLS((cert,), client_validation=fallback)),
            eds_dir=Path("/eds"), sds_dir=Path("/sds"),
        )  # fmt: skip


def test_traffic_stats_are_found_by_name() -> None:
    from lbaas.drivers.envoy.stats import lb_stats

    lb = _lb()
    values = {"http.ns/web/l.downstream_rq_total": 7, "http.ns/web/l.downstream_rq_2xx": 6,
              "http.ns/web/l.downstream_rq_5xx": 1, "http.ns/web/l.downstream_cx_active": 2,
              "connection_limit.ns/web/l.limited_connections": 3,
              "cluster.ns/web/p.upstream_rq_total": 7, "cluster.ns/web/p.upstream_rq_2xx": 6,
              "http.other/web/l.downstream_rq_total": 99}  # fmt: skip
    clusters = [{"name": "ns/web/p", "host_statuses": [
        {"hostname": "m", "stats": [{"name": "rq_total", "value": "7"},
                                    {"name": "cx_active", "value": "1"}]}]}]  # fmt: skip
    stats = lb_stats([lb], values, clusters)[lb.key]
    listener = stats.listeners["l"]
    assert (listener.requests, listener.current_sessions, listener.connection_errors) == (7, 2, 3)
    assert listener.responses == {"1xx": 0, "2xx": 6, "3xx": 0, "4xx": 0, "5xx": 1}
    assert stats.pools["p"].requests == 7 and stats.pools["p"].responses["2xx"] == 6
    assert (stats.members["m"].requests, stats.members["m"].current_sessions) == (7, 1)


def test_inline_endpoints_make_a_static_cluster_and_no_eds_file() -> None:
    lb = _lb()
    files = render_tree(lb, eds_dir=Path("/eds"), sds_dir=Path("/sds"))
    inline = render_tree(lb, eds_dir=Path("/eds"), sds_dir=Path("/sds"), inline=True)
    assert list(files.endpoints) == ["ns__web__p.json"] and inline.endpoints == {}
    (eds,), (static,) = files.clusters, inline.clusters
    assert eds["type"] == "EDS" and "load_assignment" not in eds
    assert static["type"] == "STATIC" and "eds_cluster_config" not in static
    assert static["load_assignment"]["cluster_name"] == "ns/web/p"
    assert "@type" not in static["load_assignment"]
    lb_endpoints = static["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["hostname"] for e in lb_endpoints] == ["m"]
    assert files.assignments == inline.assignments  # the members Envoy must run, either way


def test_a_redirect_keeps_the_port_the_client_connected_to() -> None:
    """Envoy strips the Host header's port: a redirect keeping the scheme names the listener's
    port (not the scheme's default); one changing the scheme goes to that scheme's default."""
    from lbaas.drivers.envoy.render.routes import render_route
    from lbaas.drivers.model import Redirect

    def redirect(listening: int, **fields: object) -> dict[str, object]:
        action = Action(ActionType.REDIRECT, redirect=Redirect(**fields))  # type: ignore[arg-type]
        policy = L7Policy("r", 1, Match(path=PathMatch(PathMatchType.PREFIX, "/old")), action)
        listener = Listener("l", listening, Protocol.HTTP, default_pool="p")
        return dict(render_route(_lb(), policy, listener)["redirect"])  # type: ignore[arg-type]

    assert redirect(8080, replace_prefix_match="/new")["port_redirect"] == 8080
    assert "port_redirect" not in redirect(80, replace_prefix_match="/new")
    assert "port_redirect" not in redirect(8080, scheme="https")
    assert redirect(8080, scheme="https", port=8443)["port_redirect"] == 8443
