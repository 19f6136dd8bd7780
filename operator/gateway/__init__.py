"""The Gateway API: Gateways and their Routes as VIP trees on the operator's devices.

A GatewayClass whose ``spec.controllerName`` is ``lbaas.dev/gateway-controller`` is this
operator's; each Gateway of such a class gets one address (shared by its VIPs) and one VIP per
port its listeners use; TCPRoutes, TLSRoutes and UDPRoutes attached to a listener give the VIP
its Pool and Members (from the backend Services' EndpointSlices). The trees are then served
like any hand-written one (binder, agents), under the same tenant rules. See
docs/gateway-api.md.

- :mod:`~lbaas.gateway.discovery`: whether the feature is on (setting, served CRDs).
"""
