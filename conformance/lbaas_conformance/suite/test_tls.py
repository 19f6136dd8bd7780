"""The TLS profile through the data plane: a certificate served, chosen by SNI, a minimum
version, cipher suites, ALPN, client certificates checked (and the subject passed on), TLS to
the members verified (and not, when told), and a certificate renewed under a steady client.

Every test proves its feature so that a driver ignoring the setting fails it: the served
certificate is compared by fingerprint, refusals are checked against a client that would
otherwise be served, and verification against a member that would otherwise answer.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from lbaas.drivers.model import (
    BackendTLS,
    ClientValidation,
    ClientValidationMode,
    ListenerTLS,
    Protocol,
    TLSVersion,
)
from lbaas_conformance.backends import Backends
from lbaas_conformance.client import until
from lbaas_conformance.features import TRAFFIC, feature
from lbaas_conformance.kit import Kit
from lbaas_conformance.tls import (
    Handshakes,
    bundle,
    certificate,
    client,
    fingerprint_served,
    https,
    issue,
    serve_tls,
    tls_member,
    try_https,
)
from lbaas_conformance.traffic import where

CA = issue("Conformance CA", ca=True)
OTHER_CA = issue("Stranger CA", ca=True)
SSL_FAILURES = (ssl.SSLError, ConnectionError, OSError)


@feature("protocol.https", layer=TRAFFIC)
def test_https_is_passed_through_to_the_member(kit: Kit, backends: Backends) -> None:
    """The client's handshake reaches the member: it is served the member's certificate."""
    issued = issue("member", "passthrough.conformance.test", issuer=CA)
    member = tls_member(backends, "passed", issued)
    lb = kit.trees.lb(*kit.slot(), [member], protocol=Protocol.HTTPS)
    kit.require(lb)
    kit.apply(lb)
    name = "passthrough.conformance.test"

    def passed_through() -> bool:
        answer = try_https(*where(lb), name)
        return answer is not None and answer.status == 200

    until(passed_through, kit.device.timing.settle, f"{lb.key} passing TLS through")
    assert fingerprint_served(*where(lb), name) == issued.fingerprint
    assert https(*where(lb), name).body == "passed"


@feature("tls.terminate", layer=TRAFFIC)
def test_the_listener_serves_its_certificate(kit: Kit, backends: Backends) -> None:
    (member,) = backends.http(1)
    cert = certificate("web", issue("web", "web.conformance.test", issuer=CA))
    lb = serve_tls(kit, [member], ListenerTLS((cert,)))
    assert fingerprint_served(*where(lb), "web.conformance.test") == cert.fingerprint
    answer = https(*where(lb), "web.conformance.test")
    assert (answer.status, answer.body) == (200, member.name), answer
    assert member.last_headers.get("host") == "web.conformance.test", "HTTP to the member"


@feature("tls.sni", layer=TRAFFIC)
def test_sni_picks_the_certificate_and_the_first_is_the_default(
    kit: Kit, backends: Backends
) -> None:
    members = backends.http(1)
    exact = certificate("exact", issue("exact", "a.conformance.test", issuer=CA))
    wild = certificate("wild", issue("wild", "*.b.conformance.test", issuer=CA))
    lb = serve_tls(kit, members, ListenerTLS((exact, wild)))
    assert fingerprint_served(*where(lb), "a.conformance.test") == exact.fingerprint
    assert fingerprint_served(*where(lb), "x.b.conformance.test") == wild.fingerprint
    assert fingerprint_served(*where(lb), "unknown.test") == exact.fingerprint, "the default"
    assert fingerprint_served(*where(lb), None) == exact.fingerprint


@feature("tls.min-version", layer=TRAFFIC)
def test_a_tls13_listener_refuses_a_tls12_client(kit: Kit, backends: Backends) -> None:
    members = backends.http(1)
    cert = certificate("v13", issue("v13", "v13.conformance.test", issuer=CA))
    lb = serve_tls(kit, members, ListenerTLS((cert,), min_version=TLSVersion.TLS_1_3))
    only12 = client(maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(SSL_FAILURES):
        fingerprint_served(*where(lb), "v13.conformance.test", only12)
    assert fingerprint_served(*where(lb), "v13.conformance.test") == cert.fingerprint


@feature("tls.cipher-suites", layer=TRAFFIC)
def test_only_the_listed_cipher_suite_is_negotiated(kit: Kit, backends: Backends) -> None:
    members = backends.http(1)
    cert = certificate("ciphers", issue("ciphers", "c.conformance.test", issuer=CA))
    listed = "ECDHE-ECDSA-AES128-GCM-SHA256"
    lb = serve_tls(kit, members, ListenerTLS((cert,), cipher_suites=(listed,)))
    offers_all = client(maximum=ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(where(lb), 5) as raw,
        offers_all.wrap_socket(raw, server_hostname="c.conformance.test") as conn,
    ):
        negotiated = conn.cipher()
    assert negotiated is not None and negotiated[0] == listed, negotiated
    unlisted = client(maximum=ssl.TLSVersion.TLSv1_2)
    unlisted.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with pytest.raises(SSL_FAILURES):
        fingerprint_served(*where(lb), "c.conformance.test", unlisted)


@feature("tls.alpn", layer=TRAFFIC)
def test_alpn_selects_an_offered_protocol(kit: Kit, backends: Backends) -> None:
    members = backends.http(1)
    cert = certificate("alpn", issue("alpn", "alpn.conformance.test", issuer=CA))
    lb = serve_tls(kit, members, ListenerTLS((cert,), alpn=("h2", "http/1.1")))
    for offered, wanted in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
        context = client()
        context.set_alpn_protocols(offered)
        with (
            socket.create_connection(where(lb), 5) as raw,
            context.wrap_socket(raw, server_hostname="alpn.conformance.test") as conn,
        ):
            assert conn.selected_alpn_protocol() == wanted, offered


@feature("tls.client-validation", layer=TRAFFIC)
def test_client_certificates_are_checked_and_the_subject_passed_on(
    kit: Kit, backends: Backends
) -> None:
    (member,) = backends.http(1)
    cert = certificate("mtls", issue("mtls", "mtls.conformance.test", issuer=CA))
    check = ClientValidation(bundle("clients", CA), ClientValidationMode.ALLOW_VALID_ONLY,
                             subject_header="X-Client-Subject")  # fmt: skip
    valid = client(own=issue("alice", issuer=CA))
    lb = serve_tls(kit, [member], ListenerTLS((cert,), client_validation=check), context=valid)
    forged = {"X-Client-Subject": "CN=forged"}
    answer = https(*where(lb), "mtls.conformance.test", context=valid, headers=forged)
    assert answer.status == 200, answer
    assert "CN=alice" in member.last_headers.get("x-client-subject", ""), member.last_headers
    for stranger in (client(), client(own=issue("mallory", issuer=OTHER_CA))):
        found = try_https(*where(lb), "mtls.conformance.test", context=stranger)
        assert found is None or found.status != 200, "no valid certificate: refused"


@feature("tls.backend", layer=TRAFFIC)
def test_tls_to_the_members_is_verified_unless_told_not_to(kit: Kit, backends: Backends) -> None:
    cert = certificate("re", issue("re", "re.conformance.test", issuer=CA))
    trusted = tls_member(backends, "trusted", issue("member", "member.internal", issuer=CA))
    stranger = tls_member(backends, "stranger", issue("stranger", "member.internal"))
    verified = BackendTLS("member.internal", True, bundle("member-ca", CA))
    lb = serve_tls(kit, [trusted], ListenerTLS((cert,)), backend=verified)
    assert https(*where(lb), "re.conformance.test").body == "trusted"
    kit.begin()  # the same load balancer, to a member another CA signed: refused
    serve_tls(kit, [stranger], ListenerTLS((cert,)), backend=verified, refused=True)
    kit.begin()  # and served when verification is turned off
    unverified = BackendTLS(None, False, None)
    lb = serve_tls(kit, [stranger], ListenerTLS((cert,)), backend=unverified)
    assert https(*where(lb), "re.conformance.test").body == "stranger"


@feature("tls.hitless-rotation", layer=TRAFFIC)
def test_a_renewed_certificate_is_served_without_a_failed_handshake(
    kit: Kit, backends: Backends
) -> None:
    members = backends.http(1)
    name = "rotate.conformance.test"
    first = certificate("rotate", issue("rotate", name, issuer=CA))
    lb = serve_tls(kit, members, ListenerTLS((first,)))
    with Handshakes(*where(lb), name) as steady:
        until(lambda: steady.sent > 20, kit.device.timing.settle, "a steady client")
        renewed = certificate("rotate", issue("rotate2", name, issuer=CA))
        kit.begin()
        serve_tls(kit, members, ListenerTLS((renewed,)))
        until(lambda: renewed.fingerprint in steady.seen, kit.device.timing.settle,
              "the renewed certificate served")  # fmt: skip
        sent = steady.sent
        until(lambda: steady.sent > sent + 20, kit.device.timing.settle, "more handshakes")
    assert steady.failures == [], steady.failures[:5]
