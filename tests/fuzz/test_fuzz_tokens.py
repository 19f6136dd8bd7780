"""Every tenant string reaches the HAProxy configuration as one escaped word, or not at all.

The tree property (``test_fuzz_specs``) renders whatever trees come out; this one aims at the
strings: an HTTP listener whose pool has cookie persistence, members and an HTTP check, a
driver tree built directly from schema-derived specs (members and check through the core's
``translate``), with the cookie name and the check's path drawn from the schema's own
patterns and from marker values (quotes, ``#``, backticks, ``$``, ``%``, ``;``).
Each value either comes back from HAProxy's tokenizer as exactly itself in its place, with the
configuration passing ``haproxy -c``, or the driver refuses the VIP, and then only for a value
that really is outside the characters HAProxy takes unquoted (no needless refusals).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fuzz.hxgrammar import haproxy_accepts, tenant_problems
from fuzz.schema import FUZZ, MARKER_COOKIES, MARKER_PATHS, dns_subdomains, ip_addresses, specs
from hypothesis import assume, event, given
from hypothesis import strategies as st
from pydantic import ValidationError

from lbaas.api.healthmonitor import URL_PATH_PATTERN, HealthMonitorSpec
from lbaas.api.member import MemberSpec
from lbaas.api.vip import COOKIE_NAME_PATTERN, VIPSpec
from lbaas.drivers.errors import UnsupportedError
from lbaas.drivers.haproxy.render import render_vip
from lbaas.drivers.haproxy.tokens import _COOKIE, UnsafeValueError
from lbaas.drivers.model import (
    Listener,
    LoadBalancer,
    Persistence,
    PersistenceType,
    Pool,
    Protocol,
)
from lbaas.trees import translate

COOKIES = st.one_of(MARKER_COOKIES, st.from_regex(COOKIE_NAME_PATTERN, fullmatch=True))
PATHS = st.one_of(MARKER_PATHS, st.from_regex(URL_PATH_PATTERN, fullmatch=True))
MEMBERS = st.lists(
    st.tuples(dns_subdomains(), specs("members", MemberSpec)),
    min_size=1,
    max_size=4,
    unique_by=lambda m: m[0],
)


@given(
    vip=specs("vips", VIPSpec),
    kind=st.sampled_from(["APP_COOKIE", "HTTP_COOKIE"]),
    cookie=COOKIES,
    path=PATHS,
    monitor=specs("healthmonitors", HealthMonitorSpec),
    members=MEMBERS,
    address=ip_addresses(),
)
@FUZZ
def test_tenant_strings_are_one_escaped_word_or_refused(
    vip: dict[str, Any],
    kind: str,
    cookie: str,
    path: str,
    monitor: dict[str, Any],
    members: list[tuple[str, dict[str, Any]]],
    address: str,
    haproxy: tuple[str, Path],
) -> None:
    try:
        spec = VIPSpec.model_validate(
            {**vip, "protocol": "HTTP", "sessionPersistence": {"type": kind, "cookieName": cookie}}
        )
        check = HealthMonitorSpec.model_validate(
            {**monitor, "type": "HTTP", "adminStateUp": True, "urlPath": path}
        )
    except ValidationError:
        assume(False)  # a value the schema refuses (a path over 2,048 characters...)
        raise
    lb = LoadBalancer(
        "tenant",
        "web",
        spec.address or address,
        (
            Listener(
                "web",
                spec.port,
                Protocol.HTTP,
                connection_limit=None if spec.connection_limit == -1 else spec.connection_limit,
                admin_state_up=spec.admin_state_up,
                default_pool="pool",
            ),
        ),
        (
            Pool(
                "pool",
                members=tuple(
                    translate.member(n, MemberSpec.model_validate(m)) for n, m in members
                ),
                monitor=translate.monitor("hm", check),
                persistence=Persistence(PersistenceType(kind), cookie),
            ),
        ),
    )
    try:
        fragment = render_vip(lb)
    except UnsupportedError as exc:
        event("refused: cookie name")
        assert "cookie name" in str(exc) and not re.fullmatch(_COOKIE, cookie), exc
        return
    except UnsafeValueError as exc:
        event("refused: expected codes")
        assert exc.kind == "expectedCodes", exc
        return
    event("rendered" + (" (a marker value)" if re.search(r"['$%;`#]", cookie + path) else ""))
    problems = tenant_problems(lb, fragment.text)
    assert not problems, "\n".join(problems) + "\n" + fragment.text
    haproxy_accepts(haproxy, lb.key, fragment.text, fragment.maps)
