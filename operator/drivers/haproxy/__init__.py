"""The reference driver: HAProxy 2.6+ on the operator's host, one master process per Device.

Device ``spec.config`` (validated by :func:`config.parse_config`; unknown keys are refused):

- ``stateDir`` (required): absolute dir holding the configuration, VIP files, sockets, pid file.
- ``managed`` (true): the driver starts HAProxy (in its own session, so it outlives the
  operator) whenever apply or probe find it down. false: the driver only writes the files and
  uses the sockets of an HAProxy run elsewhere as
  ``haproxy -W -S <masterSocket> -f <stateDir>/haproxy.cfg -f <stateDir>/conf.d``.
- ``haproxyBinary`` ("haproxy", looked up on PATH).
- ``masterSocket`` (<stateDir>/master.sock): master CLI, ``reload`` and ``show proc``.
- ``runtimeSocket`` (<stateDir>/haproxy.sock): runtime API (servers, health, frontends).
- ``reloadTimeoutSeconds`` (15): how long a start or reload may take to bring up a worker
  (never longer than the call's deadline).
- ``hardStopAfterSeconds`` (900): old workers still draining are stopped after this.

State dir: ``haproxy.cfg`` (global, defaults), ``conf.d/<ns>__<name>.cfg`` (one per VIP served:
a change rewrites one small file however many VIPs the device holds), ``vips/<ns>__<name>.json``
(each VIP's desired tree, from which a new operator renders everything again),
``driver-state.json`` (counters, the pending-reload intent, the master seen at the last reload,
VIPs left out and why), ``owner.json`` (highest fence seen), ``server-state``, ``haproxy.log``.

Mapping of the API to HAProxy (templates/*.j2):

==============================  ==========================================================
API                             HAProxy
==============================  ==========================================================
VIP ns/name                     ``frontend fe_<ns>__<name>`` + ``backend be_<ns>__<name>``
VIP address:port                ``bind <addr>:<port>`` (IPv6 as ``[addr]``); unspecified
                                and multicast addresses are refused (AddressNotAllowed)
protocol TCP / HTTP / HTTPS     ``mode tcp`` / ``mode http`` / ``mode tcp`` (TLS passthrough);
                                the pool's protocol is not used
connectionLimit N (-1)          frontend ``maxconn N`` (omitted: unlimited)
VIP adminStateUp false          frontend ``disabled``: the address stops listening
no pool / pool adminStateUp     backend without servers (HTTP: 503, TCP: closed);
false                           members then report OFFLINE
lbMethod ROUND_ROBIN            ``balance roundrobin``
lbMethod LEAST_CONNECTIONS      ``balance leastconn``
lbMethod SOURCE_IP              ``balance source`` + ``hash-type consistent`` (the default
                                map-based hash is static: no runtime weights or servers)
member                          ``server <member name> <addr>:<port> [options] weight <w>``,
                                every option on the server line (servers added at run time
                                take nothing from ``default-server``)
member weight 0                 ``weight 0``: no new connections (reported DRAINING)
member backup                   ``backup``: used only when no active server is up
member adminStateUp false       ``disabled`` (MAINT)
monitorAddress / monitorPort    ``addr <ip>`` / ``port <port>`` on the server line
persistence SOURCE_IP           ``stick-table type ip|ipv6`` + ``stick on src``
persistence HTTP_COOKIE         ``cookie <cookieName|SRVID> insert indirect nocache`` +
                                ``cookie <member name>`` per server (HTTP only)
persistence APP_COOKIE          ``stick-table type string`` + ``stick store-response
                                res.cook(<name>)`` + ``stick match req.cook(<name>)``
monitor PING                    TCP connect check (HAProxy cannot send ICMP)
monitor TCP                     TCP connect check
monitor HTTP                    ``option httpchk <method> <path>``
monitor HTTPS                   as HTTP, plus ``check-ssl verify none`` per server
monitor expectedCodes           ``http-check expect status 200`` for one code, else
                                ``rstatus ^(?:...)$`` ("200,202" -> ``20[02]``)
monitor delay / timeout         ``check inter <delay>s`` per server / ``timeout check``
monitor maxRetries / ...Down    ``rise`` / ``fall`` per server
monitor absent or admin-down    servers without ``check`` (reported NO_MONITOR)
==============================  ==========================================================

Runtime API or reload (see ``converge``, ``runtime_path``, ``servers``, ``plan``, ``reload``):

- **No reload, no** ``haproxy -c``: member create (``add server``, ``enable health``, then
  ``set server ... state ready``: UP at once, like a server read from the file), member delete
  (``state maint``, ``shutdown sessions server``, ``del server``: its open connections are
  closed), a member's address, port, backup or check options (delete + add), weight and admin
  state (``set server``). The fragment is still written, so the next reload keeps them.
  Not with HTTP_COOKIE persistence: ``add server`` has no ``cookie`` keyword in 2.6, so adding
  or removing such a member reloads (its weight and state stay runtime changes).
- **Hitless reload** (master CLI ``reload``) for anything else: a VIP created or deleted, a
  listener, mode, limit, balancing, persistence or monitor change. Health and admin state
  survive it through the ``server-state`` file; weights and states a person set by hand are
  put back to the files' right after.

Batches: ``apply`` is ``apply_many`` of one VIP, and ``apply_many`` (what the operator sends
for whatever waits for a device: a cold start, a new owner, a burst) costs what one apply costs:
one lock, one plan of every VIP file, one ``haproxy -c``, at most one reload, the runtime
commands of the VIPs that need nothing else, and one sync per set of files written. A cold
start of 1,000 VIPs is one reload, not 1,000 (each slower than the last, as the configuration
grows) when the call has the time; under the call's deadline a batch takes the VIPs that fit,
by what the device's recent calls cost (``pace``), and defers the others (retryable
``Deferred``) to the next call: a few reloads, and every call makes progress.

Safety: a VIP the device cannot take never disturbs the others, in a batch or not. Before any
reload every new listener is bound once (address not on the host -> ``AddressNotAvailable``,
port held by another process -> ``AddressInUse``, 0.0.0.0 -> ``AddressNotAllowed``, all
non-retryable), and the changed files pass ``haproxy -c``. A VIP being applied that fails
either gets its own error (with only its own HAProxy error lines), its file is not written and
the device goes on serving what it served for it before; the rest of the batch is applied.
Another VIP file that cannot be served (its address vanished, edited by hand) is left out and
reported by ``verify``. A reload that fails anyway is rolled back (files restored; the old
worker never stopped); in a batch, the VIPs its error lines name are refused and the rest
reloaded again, and a failure naming none is narrowed down by halves of the batch. A batch
fails as a whole only when the device does (HAProxy down and unmanaged, not answering, the
deadline). ``pending_reload`` is recorded before files change, and every VIP file of the batch
is written after it, so a process killed mid-apply leaves work a new one finishes (``faults``
marks each step for the crash tests). Every wait ends by the call's deadline
(``DriverTimeout``); calls with a fence older than one seen are refused (``StaleOwner``).

``verify`` drift kinds: ``PendingReload``, ``NotRunning``, ``ReloadedOutsideOperator`` (the
master's pid or reload count is not the one of the driver's last reload),
``OutdatedCommandLine``, ``ConfigChanged`` (haproxy.cfg or the VIP's fragment), ``ConfigMissing``,
``VIPFileMissing``, ``VIPFileOutdated``, ``NotApplicable``, ``NotServed`` (left out, with
why), ``RuntimeChanged`` (servers, weights, states), ``BackendMissing``, ``FrontendMissing``,
``FrontendStateChanged``. ``orphans``: VIP files, fragments and running backends of keys the
operator does not expect. ``watch``: a pidfd on the master (``watch``).

Member status (one ``show servers state`` per device): maintenance -> OFFLINE, stopped ->
ERROR, drain, stopping or weight 0 -> DRAINING, running with checks -> ONLINE, without ->
NO_MONITOR.
"""

from lbaas.drivers.haproxy.driver import HAProxyDriver

__all__ = ["HAProxyDriver"]
