"""Listeners (LDS) and the certificates they serve (SDS).

- TCP and HTTPS (passthrough): ``tcp_proxy`` to the default pool's cluster (source-IP hash
  when the pool asks for one); without a pool, to a cluster that does not exist: connections
  are accepted and closed.
- HTTP: ``http_connection_manager`` with its route table inlined (``routes``) and the router.
  ``forwarded_headers``: ``use_remote_address`` (X-Forwarded-For gets the client's address,
  X-Forwarded-Proto the listener's scheme) and ``append_x_forwarded_port``.
- TERMINATED_HTTPS: as HTTP behind TLS. The ``tls_inspector`` reads the SNI; one filter chain
  per certificate matches its DNS names (a name only for the first certificate that has it;
  Envoy prefers exact names to wildcards), and the first certificate is also the
  ``default_filter_chain`` (no SNI, or one no certificate names). Certificates come from SDS
  files, one per certificate: a new certificate is a new file, served without touching the
  listener (no drain).
- UDP: the ``udp_proxy`` listener filter to the pool's cluster (sessions by source, hashed on
  the source IP when the pool asks for it).
- ``connection_limit``: the ``envoy.filters.network.connection_limit`` filter first in each
  filter chain (counted per filter chain: with several certificates, per certificate).
- Client certificates (``client_validation``, mode ``AllowValidOnly`` only): the CA bundle
  inline and ``require_client_certificate``: a client without a certificate the bundle
  verifies fails the handshake; ``subject_header`` carries the verified subject to the members
  (``%DOWNSTREAM_PEER_SUBJECT%``, set last on the route table: a client cannot forge it).
  ``AllowInsecureFallback`` is refused (``supports``): Envoy can tell the members neither that
  a certificate was not verified nor that none was sent.
- Every listener's stats are named after it (``stat_prefix``: ``listener.<ns>/<name>/<l>.``,
  ``http.``/``tcp.``/``udp.`` likewise), which ``stats`` reads for ``traffic_stats``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lbaas.drivers.envoy.render import checks
from lbaas.drivers.envoy.render.clusters import hashed
from lbaas.drivers.envoy.render.names import NO_POOL, cluster_name, listener_name, secret_name
from lbaas.drivers.envoy.render.routes import render_route_config
from lbaas.drivers.model import (
    Certificate,
    ClientValidationMode,
    Listener,
    ListenerTLS,
    LoadBalancer,
    Protocol,
    TLSVersion,
)

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
_NET = "type.googleapis.com/envoy.extensions.filters.network"
HCM = f"{_NET}.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY = f"{_NET}.tcp_proxy.v3.TcpProxy"
CONNECTION_LIMIT = f"{_NET}.connection_limit.v3.ConnectionLimit"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
UDP_PROXY = "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig"
UDP_ROUTE = "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route"
TLS_INSPECTOR = (
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
)
DOWNSTREAM_TLS = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
_TLS_VERSION = {TLSVersion.TLS_1_2: "TLSv1_2", TLSVersion.TLS_1_3: "TLSv1_3"}

INSECURE_FALLBACK = (
    "client validation AllowInsecureFallback cannot be served by Envoy (it cannot tell the"
    " members that a certificate was not verified or not sent): use AllowValidOnly"
)

SdsPath = Callable[[str], str]
"""The SDS file of a secret name."""


def _pool_cluster(lb: LoadBalancer, pool: str | None) -> str:
    return cluster_name(lb.key, pool) if pool is not None else NO_POOL


def _tcp_proxy(lb: LoadBalancer, listener: Listener, name: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": TCP_PROXY,
        "stat_prefix": name,
        "cluster": _pool_cluster(lb, listener.default_pool),
    }
    pool = lb.pool(listener.default_pool) if listener.default_pool else None
    if pool is not None and hashed(pool):
        config["hash_policy"] = [{"source_ip": {}}]
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": config}


def _http(lb: LoadBalancer, listener: Listener, name: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": render_route_config(lb, listener, name),
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": ROUTER, "suppress_envoy_headers": True},
            }
        ],
        "strip_any_host_port": True,
        "generate_request_id": False,
    }
    if listener.forwarded_headers:
        config["use_remote_address"] = True
        config["append_x_forwarded_port"] = True
    validation = listener.tls.client_validation if listener.tls is not None else None
    if validation is not None and validation.subject_header:
        config["route_config"]["request_headers_to_add"] = [
            {
                "header": {"key": validation.subject_header, "value": "%DOWNSTREAM_PEER_SUBJECT%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ]
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def _limit(listener: Listener, name: str) -> list[dict[str, Any]]:
    if listener.connection_limit is None:
        return []
    if listener.connection_limit < 1:
        raise checks.InvalidValue(f"listener {listener.name}", "connectionLimit is below 1")
    return [
        {
            "name": "envoy.filters.network.connection_limit",
            "typed_config": {
                "@type": CONNECTION_LIMIT,
                "stat_prefix": name,
                "max_connections": listener.connection_limit,
            },
        }
    ]


def _tls_socket(lb: LoadBalancer, listener: Listener, tls: ListenerTLS, cert: Certificate,
                sds_path: SdsPath) -> dict[str, Any]:  # fmt: skip
    secret = secret_name(lb.key, listener.name, cert.name)
    common: dict[str, Any] = {
        "tls_certificate_sds_secret_configs": [
            {
                "name": secret,
                "sds_config": {
                    "resource_api_version": "V3",
                    "path_config_source": {"path": sds_path(secret)},
                },
            }
        ],
        "tls_params": {"tls_minimum_protocol_version": _TLS_VERSION[TLSVersion(tls.min_version)]},
    }
    if tls.cipher_suites:
        common["tls_params"]["cipher_suites"] = list(tls.cipher_suites)
    if tls.alpn:
        common["alpn_protocols"] = list(tls.alpn)
    context: dict[str, Any] = {"@type": DOWNSTREAM_TLS, "common_tls_context": common}
    if tls.client_validation is not None:
        ca = tls.client_validation.ca.pem
        common["validation_context"] = {"trusted_ca": {"inline_string": ca}}
        context["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def check_tls(where: str, tls: ListenerTLS) -> None:
    if not tls.certificates:
        raise checks.InvalidValue(where, "TERMINATED_HTTPS needs a certificate")
    checks.ciphers(where, tls.cipher_suites)
    for protocol in tls.alpn:
        checks.printable(f"{where} alpn", protocol, 255)
    validation = tls.client_validation
    if validation is not None:
        if validation.mode != ClientValidationMode.ALLOW_VALID_ONLY:
            raise checks.InvalidValue(where, INSECURE_FALLBACK)
        checks.pem(f"{where} client CA {validation.ca.name}", validation.ca.pem)
        if validation.subject_header:
            checks.header_name(f"{where} subjectHeader", validation.subject_header, modified=True)
    for cert in tls.certificates:
        checks.name(f"{where} certificate", cert.name)
        checks.pem(f"{where} certificate {cert.name}", cert.certificate)
        for dns in cert.dns_names:
            checks.hostname(f"{where} certificate {cert.name}", dns)


def _tls_chains(lb: LoadBalancer, listener: Listener, tls: ListenerTLS,
                filters: list[dict[str, Any]], sds_path: SdsPath) -> dict[str, Any]:  # fmt: skip
    claimed: set[str] = set()
    chains = []
    for cert in tls.certificates:
        names = [n for n in dict.fromkeys(d.lower() for d in cert.dns_names) if n not in claimed]
        claimed.update(names)
        if names:
            chains.append({
                "name": cert.name,
                "filter_chain_match": {"server_names": names},
                "filters": filters,
                "transport_socket": _tls_socket(lb, listener, tls, cert, sds_path),
            })  # fmt: skip
    default = {
        "name": "default",
        "filters": filters,
        "transport_socket": _tls_socket(lb, listener, tls, tls.certificates[0], sds_path),
    }
    return {
        "listener_filters": [
            {
                "name": "envoy.filters.listener.tls_inspector",
                "typed_config": {"@type": TLS_INSPECTOR},
            }
        ],
        "filter_chains": chains,
        "default_filter_chain": default,
    }


def _udp(lb: LoadBalancer, listener: Listener, name: str) -> dict[str, Any]:
    route = {"@type": UDP_ROUTE, "cluster": _pool_cluster(lb, listener.default_pool)}
    config: dict[str, Any] = {
        "@type": UDP_PROXY,
        "stat_prefix": name,
        "matcher": {"on_no_match": {"action": {"name": "route", "typed_config": route}}},
    }
    pool = lb.pool(listener.default_pool) if listener.default_pool else None
    if pool is not None and hashed(pool):
        config["hash_policies"] = [{"source_ip": True}]
    return {
        "udp_listener_config": {},
        "listener_filters": [
            {"name": "envoy.filters.udp_listener.udp_proxy", "typed_config": config}
        ],
    }


def render_listener(lb: LoadBalancer, listener: Listener, sds_path: SdsPath) -> dict[str, Any]:
    """The Envoy listener of ``listener`` (served: its admin state is up)."""
    name = listener_name(lb.key, listener.name)
    protocol = Protocol(listener.protocol)
    address: dict[str, Any] = {"address": lb.address, "port_value": listener.port}
    rendered: dict[str, Any] = {"@type": LISTENER, "name": name, "stat_prefix": name}
    if protocol == Protocol.UDP:
        address["protocol"] = "UDP"
        rendered |= _udp(lb, listener, name)
    elif protocol in (Protocol.TCP, Protocol.HTTPS):
        rendered["filter_chains"] = [
            {"filters": [*_limit(listener, name), _tcp_proxy(lb, listener, name)]}
        ]
    else:
        filters = [*_limit(listener, name), _http(lb, listener, name)]
        if protocol == Protocol.TERMINATED_HTTPS:
            assert listener.tls is not None  # checked by check_listener
            rendered |= _tls_chains(lb, listener, listener.tls, filters, sds_path)
        else:
            rendered["filter_chains"] = [{"filters": filters}]
    rendered["address"] = {"socket_address": address}
    return rendered


def check_listener(listener: Listener) -> None:
    where = f"listener {listener.name}"
    checks.name(where, listener.name)
    checks.port(where, listener.port)
    protocol = Protocol(listener.protocol)
    if protocol == Protocol.TERMINATED_HTTPS:
        if listener.tls is None:
            raise checks.InvalidValue(where, "TERMINATED_HTTPS needs certificates")
        check_tls(where, listener.tls)
    elif listener.tls is not None:
        raise checks.InvalidValue(where, f"a {protocol} listener terminates no TLS")
    if listener.policies and protocol not in (Protocol.HTTP, Protocol.TERMINATED_HTTPS):
        raise checks.InvalidValue(where, f"a {protocol} listener has no L7 policies")
    if protocol == Protocol.UDP and listener.connection_limit is not None:
        raise checks.InvalidValue(where, "a UDP listener has no connection limit")


def render_secret(name: str, cert: Certificate) -> dict[str, Any]:
    """The SDS resource of ``cert``: the PEM and the key, inline (the file is 0600)."""
    return {
        "@type": SECRET,
        "name": name,
        "tls_certificate": {
            "certificate_chain": {"inline_string": cert.certificate},
            "private_key": {"inline_string": cert.private_key.reveal()},
        },
    }
