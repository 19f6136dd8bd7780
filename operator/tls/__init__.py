"""TLS termination: certificates from Secrets, checked, watched and reported.

- ``certs``: parse and check a ``kubernetes.io/tls`` Secret or a CA bundle (``cryptography``);
- ``resolve``: a tree's references (``refs_of``) and its driver material (``resolve``, pure);
- ``store``: the agent's watches of exactly the Secrets and ConfigMaps its trees name;
- ``status``: ``status.tls`` and the ``CertificatesValid`` condition (pure);
- ``agent``: the TLS step of a tree's reconcile, and the certificate-expiry metric.

Key material lives only in memory (``lbaas.drivers.model.Sensitive``) and, later, in the files
a driver gives its data plane (mode 0600): never in a status, an Event, a log line, a metric or a
stored tree (``lbaas.drivers.documents`` stores keys as fingerprints).
"""
