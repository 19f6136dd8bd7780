"""The operator's access to the Kubernetes API.

``client`` sends requests (through the official client, in a bounded thread pool);
``resources`` names what is watched; ``informer`` lists and watches one resource into an
in-memory cache that the rest of the operator reads instead of calling the API.
"""
