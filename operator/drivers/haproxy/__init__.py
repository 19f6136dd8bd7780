"""The reference driver: HAProxy 2.6+ on the operator's host, one master process per Device.

Device ``spec.config`` (validated by :func:`config.parse_config`; unknown keys are refused):

- ``stateDir`` (required): absolute dir holding haproxy.cfg, vips/*.json, sockets, pid file.
- ``managed`` (true): the driver starts HAProxy (in its own session, so it outlives the
  operator) whenever apply or probe find it down. false: the driver only writes the config
  and uses the sockets of an HAProxy run elsewhere as
  ``haproxy -W -S <masterSocket> -f <stateDir>/haproxy.cfg``.
- ``haproxyBinary`` ("haproxy", looked up on PATH).
- ``masterSocket`` (<stateDir>/master.sock): master CLI, ``reload`` and ``show proc``.
- ``runtimeSocket`` (<stateDir>/haproxy.sock): runtime API, ``set server`` and ``show stat``.
- ``reloadTimeoutSeconds`` (15): how long a start or reload may take to bring up a worker.
- ``hardStopAfterSeconds`` (900): old workers still draining are stopped after this.

Mapping of the API to HAProxy (templates/*.j2):

==============================  ==========================================================
API                             HAProxy
==============================  ==========================================================
VIP ns/name                     ``frontend fe_<ns>__<name>`` + ``backend be_<ns>__<name>``
VIP address:port                ``bind <addr>:<port>`` (IPv6 as ``[addr]``)
protocol TCP / HTTP / HTTPS     ``mode tcp`` / ``mode http`` / ``mode tcp`` (TLS passthrough);
                                the pool's protocol is not used
connectionLimit N (-1)          frontend ``maxconn N`` (omitted: unlimited)
VIP adminStateUp false          frontend ``disabled``: the address stops listening
no pool / pool adminStateUp     backend without servers (HTTP: 503, TCP: closed);
false                           members then report OFFLINE
lbMethod ROUND_ROBIN            ``balance roundrobin``
lbMethod LEAST_CONNECTIONS      ``balance leastconn``
lbMethod SOURCE_IP              ``balance source``
member                          ``server <member name> <addr>:<port> weight <w>``
member weight 0                 ``weight 0``: no new connections (reported DRAINING)
member backup                   ``backup``: used only when no active server is up
member adminStateUp false       ``disabled`` (MAINT); runtime ``set server ... state maint``
monitorAddress / monitorPort    ``addr <ip>`` / ``port <port>`` on the server line
persistence SOURCE_IP           ``stick-table type ip|ipv6`` + ``stick on src``
persistence HTTP_COOKIE         ``cookie <cookieName|SRVID> insert indirect nocache`` +
                                ``cookie <member name>`` per server (HTTP only)
persistence APP_COOKIE          ``stick-table type string`` + ``stick store-response
                                res.cook(<name>)`` + ``stick match req.cook(<name>)``
monitor PING                    TCP connect check (HAProxy cannot send ICMP)
monitor TCP                     TCP connect check
monitor HTTP                    ``option httpchk <method> <path>``
monitor HTTPS                   as HTTP, plus ``check-ssl verify none``
monitor expectedCodes           ``http-check expect status 200`` for one code, else
                                ``rstatus ^(?:...)$`` ("200,202" -> ``20[02]``)
monitor delay / timeout         ``default-server check inter <delay>s`` / ``timeout check``
monitor maxRetries / ...Down    ``rise`` / ``fall``
monitor absent or admin-down    servers without ``check`` (reported NO_MONITOR)
==============================  ==========================================================

Member status (``show stat``): MAINT -> OFFLINE, DOWN -> ERROR, DRAIN or weight 0 ->
DRAINING, UP -> ONLINE, no check -> NO_MONITOR.

Changes that touch only member weight or admin state are pushed with ``set server`` and no
reload; the new full configuration is still written, so a later reload keeps them. Anything
else is a hitless reload through the master CLI. Health state survives reloads through a
``server-state-file`` dumped just before each reload.
"""

from lbaas.drivers.haproxy.driver import HAProxyDriver

__all__ = ["HAProxyDriver"]
