"""Coordination of controllers and agents through Kubernetes Leases (issue 12).

Who owns what is decided by ``coordination.k8s.io/v1`` Leases in the lease namespace; nothing
else is shared between processes. The modules, from the bottom up:

- :mod:`~lbaas.leases`: Lease records and names, compare-and-swap writes
  (:class:`LeaseStore`, blocking) and expiry by local observation (:class:`Observer`).
- :mod:`~lbaas.agents.calls`: running those blocking calls from asyncio, with timeouts.
- :mod:`~lbaas.agents.election`: :class:`LeaderElector`, one acting controller.
- :mod:`~lbaas.agents.assignment`: :func:`assign`, the pure fair-share Device → agent map
  that every agent computes alike.
- :mod:`~lbaas.agents.presence` and :mod:`~lbaas.agents.transfer`: an agent's presence
  Lease; why a Device changed owner.
- :mod:`~lbaas.agents.ownership`: :class:`DeviceOwnership`, an agent's Devices: takes,
  renews and hands over their Leases, and tells the runtime when a driver call may start
  (``may_start``) with the proof that two agents' calls on one Device never overlap.

The runtime (``lbaas-operator controller|agent|run``) owns the processes, the watches and
the driver calls; it calls into these modules and receives their callbacks.
"""
