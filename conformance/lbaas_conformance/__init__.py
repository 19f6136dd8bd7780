"""lbaas-conformance: the driver conformance kit of lbaas-operator.

``lbaas-conformance --driver NAME --device-config FILE`` runs the suite
(``lbaas_conformance.suite``) against a driver installed in the same environment and one of its
devices, and reports per profile and feature what passed, failed or was skipped and why
(``docs/drivers.md``). Tests are tied to features with :func:`feature`.
"""

from lbaas_conformance.features import CONTRACT, TRAFFIC, feature

__version__ = "0.1.0"

__all__ = ["CONTRACT", "TRAFFIC", "__version__", "feature"]
