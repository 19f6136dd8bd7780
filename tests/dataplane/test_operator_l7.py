"""L7 routing through the operator and a real HAProxy (issue 20): VIPs, Pools, Members and
L7Policies created through the API, real requests through the VIP.

- one VIP, four pools: two host names to two pools, a path prefix to a third, a header match,
  a weighted 80/20 split (within 5 % over 2,000 requests), a redirect to HTTPS (301 and the
  right Location), a 403 reject, request and response headers set and removed, the
  X-Forwarded-* headers the members see, the default pool, precedence by priority;
- Forward policies added, changed and removed while a client sends requests back to back:
  no failed request and no reload (the map files change at run time);
- bad input: a policy naming a missing pool (Error PoolNotFound, then Active once the pool
  exists), another VIP's pool (PoolNotInVIP), a redirect back to itself (RedirectLoop), an
  invalid or oversized regex and a redirect without target (refused by the API server): each
  says so, and the rest of the VIP and another VIP of the device serve on, requests unlost.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from dataplane.hxsupport import (
    Backend,
    Backends,
    Load,
    OperatorDevice,
    get,
    net,
    wait_applied,
)
from dataplane.opsupport import Site, deploy
from kubernetes.client.exceptions import ApiException

from helpers import Api, OperatorProcess, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]


def named(backends: Backends, *names: str) -> list[Backend]:
    made = backends.http(len(names))
    for backend, name in zip(made, names, strict=True):
        backend.name = name
    return made


def add_pool(api: Api, site: Site, pool: str, backend: Backend) -> None:
    for kind, name, spec in (
        ("Pool", pool, {"vipRef": site.name, "protocol": "HTTP"}),
        (
            "Member",
            f"{pool}-m",
            {"poolRef": pool, "address": backend.address, "port": backend.port},
        ),
    ):
        api.create(
            {"kind": kind, "metadata": {"name": name, "namespace": site.namespace}, "spec": spec}
        )
    site.members[f"{pool}-m"] = backend
    wait_applied(api, "Member", f"{pool}-m", site.namespace)


def l7policy(api: Api, site: Site, name: str, priority: int, action: dict[str, Any],
             **spec: Any) -> None:  # fmt: skip
    body = {"vipRef": site.name, "priority": priority, "action": action, **spec}
    api.create(
        {"kind": "L7Policy", "metadata": {"name": name, "namespace": site.namespace}, "spec": body}
    )


def to(*pools: str | tuple[str, int]) -> dict[str, Any]:
    refs = [
        {"poolRef": p} if isinstance(p, str) else {"poolRef": p[0], "weight": p[1]} for p in pools
    ]
    return {"type": "Forward", "pools": refs}


def who(site: Site, path: str = "/", **headers: str) -> str:
    status, body, _ = get(*site.vip, path, headers=headers)
    assert status == 200, (path, headers, status, body)
    return body


@pytest.fixture
def l7site(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> Site:
    """VIP ``shop`` (HTTP, default pool ``shop`` = main) with pools www, api, static, canary,
    blue and green, each one member answering its pool's name."""
    device = make_hx_device(f"{net(10, 208)}/28")
    site = deploy(api, namespace, device, "shop", named(backends, "main"), defaultPoolRef="shop")
    for pool in ("www", "api", "static", "canary", "blue", "green"):
        add_pool(api, site, pool, named(backends, pool)[0])
    return site


def test_routing_by_host_path_header_and_weight_with_redirect_reject_and_headers(
    api: Api, namespace: str, l7site: Site
) -> None:
    site = l7site
    l7policy(api, site, "www", 10, to("www"), match={"hostnames": ["www.example.com"]})
    l7policy(api, site, "api", 20, to("api"), match={"hostnames": ["api.example.com"]})
    l7policy(
        api,
        site,
        "static",
        30,
        to("static"),
        match={"path": {"type": "PathPrefix", "value": "/static"}},
    )
    l7policy(
        api,
        site,
        "canary",
        5,
        to("canary"),
        match={"headers": [{"name": "X-Canary", "value": "yes"}]},
    )
    l7policy(
        api, site, "split", 40, to(("blue", 80), ("green", 20)), match={"path": {"value": "/split"}}
    )
    https = {"type": "Redirect", "redirect": {"scheme": "https", "statusCode": 301}}
    l7policy(api, site, "https", 1, https, match={"hostnames": ["secure.example.com"]})
    l7policy(api, site, "admin", 2, {"type": "Reject"}, match={"path": {"value": "/admin"}})
    l7policy(
        api, site, "headers", 3, to("api"),
        match={"path": {"type": "Exact", "value": "/headers"}},
        requestHeaders={"set": [{"name": "X-Route", "value": "headers 100%"}],
                        "remove": ["X-Drop"]},
        responseHeaders={"add": [{"name": "X-Served-By", "value": "lbaas"}],
                         "remove": ["Server"]},
    )  # fmt: skip
    for name in ("www", "api", "static", "canary", "split", "https", "admin", "headers"):
        wait_applied(api, "L7Policy", name, namespace)
    vip = site.status()
    assert vip["phase"] == "Active"
    default = next(c for c in vip["conditions"] if c["type"] == "DefaultPool")
    assert (default["status"], default["message"]) == (
        "True",
        "requests no L7Policy takes go to pool shop",
    )

    assert who(site, Host="www.example.com") == "www"
    assert who(site, "/x", Host="api.example.com") == "api"
    assert who(site, "/static/app.css", Host="other.example.com") == "static"
    assert who(site, "/", Host="other.example.com") == "main"  # the default pool
    assert who(site, "/", Host="www.example.com", **{"X-Canary": "yes"}) == "canary"  # 5 < 10
    status, _, headers = get(*site.vip, "/cart?id=7", headers={"Host": "secure.example.com"})
    assert (status, headers["location"]) == (301, "https://secure.example.com/cart?id=7")
    assert get(*site.vip, "/admin/users")[0] == 403
    split = Counter(who(site, "/split") for _ in range(2000))
    print(f"\n80/20 split through the operator over 2000 requests: {dict(split)}")
    assert set(split) == {"blue", "green"} and abs(split["blue"] / 2000 - 0.8) <= 0.05, split

    status, body, response = get(
        *site.vip, "/headers?echo=1", headers={"X-Drop": "secret", "X-Forwarded-For": "10.9.9.9"}
    )
    seen = dict((k, v) for k, v in json.loads(body)["headers"])
    assert seen["x-route"] == "headers 100%" and "x-drop" not in seen
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-port"] == str(site.port)
    assert "127." in seen["x-forwarded-for"]  # the client, as HAProxy saw it
    assert response["x-served-by"] == "lbaas" and "server" not in response
    plain = get(*site.vip, "/?echo=1", headers={"X-Drop": "kept"})
    assert dict((k, v) for k, v in json.loads(plain[1])["headers"])["x-drop"] == "kept"
    assert plain[2]["server"] == "member"


def test_forward_policies_change_under_load_without_failure_or_reload(
    api: Api, namespace: str, l7site: Site
) -> None:
    site = l7site
    l7policy(api, site, "www", 10, to("www"), match={"hostnames": ["www.example.com"]})
    wait_applied(api, "L7Policy", "www", namespace)
    reloads = site.device.reloads()
    updates = site.device.runtime_updates()

    def patch(name: str, spec: dict[str, Any]) -> Callable[[], None]:
        return lambda: api.patch_spec("L7Policy", name, namespace, spec)

    def api_host() -> str:
        return who(site, Host="api.example.com")

    new_api = {"hostnames": ["api.example.com"]}
    w_path = {"hostnames": None, "path": {"value": "/w"}}
    steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
        ("add", lambda: l7policy(api, site, "api", 20, to("api"), match=new_api),
         lambda: api_host() == "api"),
        ("retarget", patch("api", {"action": to("static")}), lambda: api_host() == "static"),
        ("split", patch("api", {"action": to(("blue", 1), ("green", 1))}),
         lambda: {api_host() for _ in range(20)} == {"blue", "green"}),
        ("rematch", patch("www", {"match": w_path}),
         lambda: who(site, "/w/x") == "www" and who(site, Host="www.example.com") == "main"),
        ("remove", lambda: api.delete("L7Policy", "api", namespace), lambda: api_host() == "main"),
    ]  # fmt: skip
    with Load(*site.vip) as load:
        for step, change, done in steps:
            change()
            wait_for(done, 20, f"step {step} served")
    assert load.failures == [] and load.sent > 50, load.failures[:5]
    assert site.device.reloads() == reloads, "Forward policies changed: maps only, no reload"
    assert site.device.runtime_updates() > updates
    print(f"\n{len(steps)} policy changes under load: {load.sent} requests, 0 failed, 0 reloads")


def test_bad_policies_say_why_and_disturb_nothing(
    api: Api,
    namespace: str,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    operator: OperatorProcess,
) -> None:
    device = make_hx_device(f"{net(10, 224)}/28")
    site = deploy(api, namespace, device, "web", named(backends, "web"))
    other = deploy(api, namespace, device, "other", named(backends, "other"))
    l7policy(api, site, "good", 10, to("web"), match={"path": {"value": "/good"}})
    wait_applied(api, "L7Policy", "good", namespace)
    with Load(*other.vip) as load:
        l7policy(api, site, "missing", 1, to("later"))
        l7policy(api, site, "theirs", 2, to("other"))
        l7policy(api, site, "loop", 3, {"type": "Redirect", "redirect": {"scheme": "http"}})
        api.wait_phase("L7Policy", "missing", namespace, "Error", 20, reason="PoolNotFound")
        api.wait_phase("L7Policy", "theirs", namespace, "Error", 20, reason="PoolNotInVIP")
        api.wait_phase("L7Policy", "loop", namespace, "Error", 20, reason="RedirectLoop")
        assert (
            "action.pools names Pool later, which does not exist"
            in api.status("L7Policy", "missing", namespace)["message"]
        )
        assert "belongs to VIP other" in api.status("L7Policy", "theirs", namespace)["message"]
        for bad, needle in (
            ({"match": {"path": {"type": "RegularExpression", "value": "^/(a"}}},
             "error parsing regexp: missing closing )"),
            ({"match": {"path": {"type": "RegularExpression", "value": "/" + "a" * 1024}}},
             "Too long: may not be more than 1024 bytes"),
            ({"action": {"type": "Redirect", "redirect": {"statusCode": 301}}},
             "a redirect needs a target"),
        ):  # fmt: skip
            spec = {"vipRef": "web", "action": to("web"), **bad}
            with pytest.raises(ApiException) as refused:
                api.create(
                    {
                        "kind": "L7Policy",
                        "metadata": {"name": "bad", "namespace": namespace},
                        "spec": spec,
                    }
                )
            assert refused.value.status == 422 and needle in str(refused.value.body), refused.value
        # the rest of the VIP and the other VIP serve on
        assert who(site, "/good") == "web" and who(site, "/") == "web"
        assert site.status()["phase"] == "Active" and other.status()["phase"] == "Active"
        add_pool(api, site, "later", named(backends, "later")[0])
        wait_applied(api, "L7Policy", "missing", namespace)
        wait_for(
            lambda: who(site, "/anything") == "later", 20, "the policy serves once its pool exists"
        )
    assert load.failures == [] and load.sent > 20, load.failures[:5]
