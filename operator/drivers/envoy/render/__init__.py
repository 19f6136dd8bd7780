"""Pure rendering of the driver data model to Envoy resources (v3 JSON): no file, no process.

- :mod:`.names`: resource names and file names (a tree's key is in every name it owns).
- :mod:`.checks`: every value a tree carries, checked before Envoy sees it.
- :mod:`.clusters`: pools as clusters (CDS) and their members as endpoints (EDS).
- :mod:`.routes`: L7 policies as virtual hosts and routes.
- :mod:`.listeners`: listeners (LDS): TCP proxy, HTTP connection manager, TLS, UDP proxy.
- :mod:`.tree`: one tree rendered whole, and the device's files from all its trees.
"""
