"""Services of type LoadBalancer: the operator as a ``loadBalancerClass`` implementation.

A Service whose ``spec.loadBalancerClass`` names this operator's class (or that names none,
when the operator is the cluster's default) gets VIP trees generated from it and its
EndpointSlices; the trees are then served like any hand-written one (binder, agents).

- :mod:`~lbaas.services.annotations`: the ``lbaas.dev/*`` annotations (pure).
- :mod:`~lbaas.services.translate`: Service + slices + options → desired objects, and the
  Service's ``status.loadBalancer`` from the VIPs (pure).
- :mod:`~lbaas.services.controller`: the loop keyed by Service, in the controller role.
- :mod:`~lbaas.services.notices`: the Warning Events a Service gets, each said once.

What the Gateway API controller does the same way (the writer, shared addresses, owned
bodies, endpoints from slices) is in :mod:`lbaas.generated`.
"""
