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

State dir: ``haproxy.cfg`` (global, defaults; ``default-path origin <stateDir>``),
``conf.d/<ns>__<name>.cfg`` (one per load balancer served: a change rewrites one small file
however many the device holds), ``maps/fe_<ns>__<name>__l<n>...map`` (the L7 map files of its
HTTP listeners, see ``l7``),
``vips/<ns>__<name>.json`` (each load balancer's desired tree, ``documents.to_document`` with a
version, from which a new operator renders everything again; files of the 0.1 driver are read
too, see ``upgrade``), ``driver-state.json`` (counters, the pending-reload intent, the master
seen at the last reload, trees left out and why), ``owner.json`` (highest fence seen),
``server-state``, ``haproxy.log``.

Contract 1 (``lbaas.drivers.contract``): the driver receives the driver data model
(``lbaas.drivers.model``) and imports nothing of the API. Its features are
``features.FEATURES``: TCP, HTTP and HTTPS passed through, every balancing method, member,
pool and listener options, every monitor and persistence type, several pools per load
balancer, L7 policies (every match, Forward with weighted splits, Redirect, Reject, header
changes) and forwarded headers, and the operational promises (batch, hitless members, drain,
member status, verify, orphans, watch, fencing). A tree asking for anything else (TLS
termination, UDP, several listeners) is refused with ``Unsupported`` naming the feature; so is
a policy with a header or query parameter name holding ``'`` (``supports``: the core leaves
that policy out alone).

Mapping of the driver data model to HAProxy (``proxies``, ``templates/*.j2``):

==============================  ==========================================================
Model                           HAProxy
==============================  ==========================================================
LoadBalancer ns/name            ``conf.d/<ns>__<name>.cfg`` holding its proxies; every
                                name below is ``<prefix>_<ns>__<name>__<part>``: no part
                                holds ``_``, so each reads back as the key (``names``)
Listener                        ``frontend fe_<ns>__<name>__<listener>``
LoadBalancer address + port     ``bind <addr>:<port>`` (IPv6 as ``[addr]``); unspecified
                                and multicast addresses are refused (AddressNotAllowed)
protocol TCP / HTTP / HTTPS     ``mode tcp`` / ``mode http`` / ``mode tcp`` (TLS passthrough)
                                for the frontend and its default pool's backend; a pool no
                                listener uses takes the first listener's mode
connection_limit N (None)       frontend ``maxconn N`` (omitted: unlimited)
listener admin_state_up false   frontend ``disabled``: the port stops listening
default_pool                    ``default_backend be_<ns>__<name>__<pool>``; None: no
                                backend (HTTP answers 503, TCP closes the connection)
policies (HTTP listener)        ``l7``: Forward by host/path = entries of map files
                                (``map_reg`` over ``<host><path>``, in priority order),
                                changed at run time; other policies = ``acl`` +
                                ``http-request`` rules (set-var, redirect, deny, header
                                changes), ``http-after-response`` for response headers;
                                ``use_backend %[var(txn.l7t)]`` before ``default_backend``
weighted split                  a split map (``map_str``): 100 buckets by weight, the
                                request's bucket ``rand(100)`` (1 % resolution)
forwarded_headers               ``option forwardfor`` + ``X-Forwarded-Proto``/``-Port``
Pool                            ``backend be_<ns>__<name>__<pool>``
pool admin_state_up false       backend without servers; its members report OFFLINE
method ROUND_ROBIN              ``balance roundrobin``
method LEAST_CONNECTIONS        ``balance leastconn``
method SOURCE_IP                ``balance source`` + ``hash-type consistent`` (the default
                                map-based hash is static: no runtime weights or servers)
Member                          ``server <member name> <addr>:<port> [options] weight <w>``
                                in its pool's backend, every option on the server line
                                (servers added at run time take nothing from
                                ``default-server``)
member weight 0                 ``weight 0``: no new connections (reported DRAINING)
member backup                   ``backup``: used only when no active server is up
member admin_state_up false     ``disabled`` (MAINT)
monitor_address / _port         ``addr <ip>`` / ``port <port>`` on the server line
persistence SOURCE_IP           ``stick-table type ip|ipv6`` + ``stick on src``
persistence HTTP_COOKIE         ``cookie <cookie_name|SRVID> insert indirect nocache`` +
                                ``cookie <member name>`` per server (HTTP only)
persistence APP_COOKIE          ``stick-table type string`` + ``stick store-response
                                res.cook(<name>)`` + ``stick match req.cook(<name>)``
monitor PING                    TCP connect check (HAProxy cannot send ICMP)
monitor TCP                     TCP connect check
monitor HTTP                    ``option httpchk <method> <path>``
monitor HTTPS                   as HTTP, plus ``check-ssl verify none`` per server
monitor expected_codes          ``http-check expect status 200`` for one code, else
                                ``rstatus ^(?:...)$`` ("200,202" -> ``20[02]``)
monitor delay / timeout         ``check inter <delay>s`` per server / ``timeout check``
monitor max_retries / ..._down  ``rise`` / ``fall`` per server
monitor None or admin-down      servers without ``check`` (reported NO_MONITOR)
==============================  ==========================================================

TLS termination (certificates on the ``bind`` line) has its place in the frontend template;
it is not rendered yet.

Runtime API or reload (see ``converge``, ``runtime_path``, ``servers``, ``plan``, ``reload``):

- **No reload, no** ``haproxy -c``: L7 Forward policies by host and path added, changed or
  removed and weighted splits re-weighted (``prepare map``/``add map``/``commit map``: the
  map files' entries, atomically; ``maps``), member create (``add server``, ``enable health``, then
  ``set server ... state ready``: UP at once, like a server read from the file), member delete
  (``state maint``, ``shutdown sessions server``, ``del server``: its open connections are
  closed), a member's address, port, backup or check options (delete + add), weight and admin
  state (``set server``), a pool's admin state, in any pool of the load balancer (each backend
  is planned on its own). The fragment is still written, so the next reload keeps them.
  Not with HTTP_COOKIE persistence: ``add server`` has no ``cookie`` keyword in 2.6, so adding
  or removing such a member reloads (its weight and state stay runtime changes).
- **Hitless reload** (master CLI ``reload``) for anything else: a VIP created or deleted, a
  listener, mode, limit, default pool, balancing, persistence or monitor change, a pool added
  or removed, an L7 policy that is a rule (headers, method, query, regex, Redirect, Reject,
  header changes) added, changed or removed. Health and admin state survive it through the
  ``server-state`` file; weights and states a person set by hand are put back to the files'
  right after.

Batches: ``apply`` is ``apply_many`` of one VIP, and ``apply_many`` (what the operator sends
for whatever waits for a device: a cold start, a new owner, a burst) costs what one apply costs:
one lock, one plan of every VIP file, one ``haproxy -c``, at most one reload, the runtime
commands of the VIPs that need nothing else, and one sync per set of files written. A cold
start of 1,000 VIPs is one reload, not 1,000 (each slower than the last, as the configuration
grows) when the call has the time; under the call's deadline a batch takes the VIPs that fit,
by what the device's recent calls cost (``toolkit.pace``), and defers the others (retryable
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
``OutdatedCommandLine``, ``ConfigChanged`` (haproxy.cfg or the VIP's fragment),
``ConfigMissing``, ``VIPFileMissing``, ``VIPFileOutdated``, ``NotApplicable``, ``NotServed``
(left out, with why), ``RuntimeChanged`` (servers, weights, states), ``BackendMissing``,
``FrontendMissing``, ``FrontendStateChanged``, ``MapChanged`` (an L7 map's running entries),
``MapFileChanged``. ``orphans``: keys of VIP files, fragments and running frontends and
backends the operator does not expect. ``watch``: a pidfd on the master
(``toolkit.deathwatch``).

Member status (``member_statuses``: one ``show servers state`` per device, by member name):
maintenance -> OFFLINE, stopped -> ERROR, drain, stopping or weight 0 -> DRAINING, running
with checks -> ONLINE, without -> NO_MONITOR; members of an admin-down pool -> OFFLINE.
"""

from lbaas.drivers.haproxy.driver import HAProxyDriver

__all__ = ["HAProxyDriver"]
