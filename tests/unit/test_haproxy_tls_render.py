"""TLS in the HAProxy driver's rendering (pure): the bind line, the client-subject header, the
servers' TLS options, what the structure digest sees (a renewed certificate leaves it as it
was: the runtime path), the certificate files a tree needs, and the values refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lbaas.drivers.documents import load_balancer, to_document
from lbaas.drivers.errors import UnsupportedError
from lbaas.drivers.haproxy import certs
from lbaas.drivers.haproxy.render import render_vip
from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import (
    BackendTLS,
    CABundle,
    Certificate,
    ClientValidation,
    ClientValidationMode,
    Listener,
    ListenerTLS,
    LoadBalancer,
    Member,
    Pool,
    Protocol,
    Sensitive,
    TLSVersion,
)

CERTS = "/state/certs"


def cert(name: str, body: str = "CERT", key: str = "KEY") -> Certificate:
    return Certificate(name, f"-----BEGIN CERTIFICATE-----\n{body}\n", Sensitive(key))


def lb(tls: ListenerTLS, backend: BackendTLS | None = None) -> LoadBalancer:
    listener = Listener("web", 443, Protocol.TERMINATED_HTTPS, default_pool="p", tls=tls)
    pool = Pool("p", members=(Member("m1", "10.1.0.1", 8443),), tls=backend)
    return LoadBalancer("shop", "web", "10.0.0.1", (listener,), (pool,))


def line(text: str, start: str) -> str:
    return next(x.strip() for x in text.splitlines() if x.strip().startswith(start))


def test_the_bind_line_carries_every_tls_option() -> None:
    validation = ClientValidation(
        CABundle("clients", "PEM", "f"), ClientValidationMode.ALLOW_VALID_ONLY, "X-Client-Subject"
    )
    tls = ListenerTLS(
        (cert("a"), cert("b")),
        min_version=TLSVersion.TLS_1_3,
        cipher_suites=("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"),
        alpn=("h2", "http/1.1"),
        client_validation=validation,
    )
    text = render_vip(lb(tls), CERTS).text
    assert line(text, "bind") == (
        "bind 10.0.0.1:443 ssl crt-list /state/certs/shop__web/l/web/crt-list"
        " ssl-min-ver TLSv1.3 ciphers ECDHE-ECDSA-AES128-GCM-SHA256"
        " ciphersuites TLS_AES_128_GCM_SHA256 alpn h2,http/1.1"
        " ca-file shop__web/l/web/client-ca.pem verify required"
    )
    assert line(text, "mode") == "mode http"
    assert line(text, "http-request del-header") == "http-request del-header X-Client-Subject"
    assert line(text, "http-request set-header") == (
        "http-request set-header X-Client-Subject %[ssl_c_s_dn(,0,rfc2253)]"
        " if { ssl_c_used } { ssl_c_verify 0 }"
    )
    lenient = replace(validation, mode=ClientValidationMode.ALLOW_INSECURE_FALLBACK)
    text = render_vip(lb(replace(tls, client_validation=lenient)), CERTS).text
    assert "verify optional crt-ignore-err all ca-ignore-err all" in line(text, "bind")


def test_server_tls_options() -> None:
    verified = BackendTLS("web.internal", True, CABundle("ca", "PEM", "f"))
    fragment = render_vip(lb(ListenerTLS((cert("a"),)), verified), CERTS)
    assert line(fragment.text, "server m1") == (
        "server m1 10.1.0.1:8443 ssl verify required ca-file shop__web/p/p/ca.pem"
        " sni str(web.internal) verifyhost web.internal weight 1"
    )
    assert "# servers: ssl verify required" in fragment.text, "in the structure"
    unverified = render_vip(lb(ListenerTLS((cert("a"),)), BackendTLS(None, False)), CERTS)
    assert line(unverified.text, "server m1") == "server m1 10.1.0.1:8443 ssl verify none weight 1"
    assert fragment.structure != unverified.structure


def test_a_renewed_certificate_keeps_the_structure_a_new_set_changes_it() -> None:
    base = render_vip(lb(ListenerTLS((cert("a"), cert("b")))), CERTS)
    renewed = render_vip(lb(ListenerTLS((cert("a", "NEW", "NEWKEY"), cert("b")))), CERTS)
    assert (renewed.text, renewed.structure) == (base.text, base.structure)
    for other in ((cert("b"), cert("a")), (cert("a"),), (cert("a"), cert("b"), cert("c"))):
        assert render_vip(lb(ListenerTLS(other)), CERTS).structure != base.structure


def test_the_files_a_tree_needs_and_a_stored_tree_needs_none() -> None:
    validation = ClientValidation(CABundle("clients", "CLIENTS", "f"))
    tree = lb(
        ListenerTLS((cert("a"), cert("b", "B", "KB")), client_validation=validation),
        BackendTLS("x.internal", True, CABundle("ca", "BACKEND", "f")),
    )
    files = certs.wanted(tree)
    assert files == {
        "shop__web/l/web/crt-list": (
            "list",
            "shop__web/l/web/crt/a.pem\nshop__web/l/web/crt/b.pem\n",
        ),
        "shop__web/l/web/crt/a.pem": ("crt", "-----BEGIN CERTIFICATE-----\nCERT\nKEY"),
        "shop__web/l/web/crt/b.pem": ("crt", "-----BEGIN CERTIFICATE-----\nB\nKB"),
        "shop__web/l/web/client-ca.pem": ("ca", "CLIENTS"),
        "shop__web/p/p/ca.pem": ("ca", "BACKEND"),
    }
    stored = load_balancer(to_document(tree))
    assert stored == tree and certs.wanted(stored) is None, "keys are not in a stored tree"


@pytest.mark.parametrize(
    "bad",
    [
        lambda t: replace(t, certificates=(cert("../../etc/passwd"),)),
        lambda t: replace(t, certificates=(cert("a b"),)),
        lambda t: replace(t, alpn=("h2 http/1.1",)),
        lambda t: replace(
            t, client_validation=ClientValidation(CABundle("c", "", ""), subject_header="X\nY")
        ),
    ],
)
def test_unsafe_values_are_refused(bad: object) -> None:
    tls = ListenerTLS((cert("a"),))
    with pytest.raises(UnsafeValueError):
        render_vip(lb(bad(tls)), CERTS)  # type: ignore[operator]


def test_what_the_driver_cannot_serve() -> None:
    with pytest.raises(UnsafeValueError, match="no certificate directory"):
        render_vip(lb(ListenerTLS((cert("a"),))))
    with pytest.raises(UnsafeValueError):
        render_vip(lb(ListenerTLS((cert("a"),)), BackendTLS("*.wild", False)), CERTS)
    with pytest.raises(UnsupportedError, match="at most 251"):
        render_vip(lb(ListenerTLS((cert("c" * 252),))), CERTS)
    for suite in ("ALL", "eNULL", "NO-SUCH-SUITE"):
        with pytest.raises(UnsupportedError, match=f"cipher suite '{suite}'"):
            render_vip(lb(ListenerTLS((cert("a"),), cipher_suites=(suite,))), CERTS)
    plain = replace(lb(ListenerTLS((cert("a"),))).listeners[0], protocol=Protocol.HTTP)
    with pytest.raises(UnsafeValueError, match="TLS settings without TLS"):
        render_vip(replace(lb(ListenerTLS((cert("a"),))), listeners=(plain,)), CERTS)
