"""Objects the operator generates from other objects: the machinery the translators share.

The Services controller (Services of type LoadBalancer) and the Gateway API controller
(Gateways and their Routes) both turn objects they do not own into VIP trees. What they have
in common lives here, once:

- :mod:`~lbaas.generated.owned`: the body of a generated object (owner reference, labels) and
  the test "applying this would change nothing" (pure);
- :mod:`~lbaas.generated.sharing`: several VIPs on one address (a Service's ports, a Gateway's
  listeners): the first is placed by the binder, the others follow it (pure);
- :mod:`~lbaas.generated.endpoints`: the ready endpoints of a Service port, from its
  EndpointSlices, and the Members' names (pure);
- :mod:`~lbaas.generated.objects`: the writer: server-side applies in waves (parents first),
  only of what differs, and deletes sent once.
"""
