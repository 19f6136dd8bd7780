"""Developer tooling for a checkout of lbaas-operator: the quick start and the local cluster.

Not part of the operator's distribution or image: these read the checkout (``crds/``,
``manifests/examples/``, ``../shared/testbed``). ``make install`` installs them editable.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
"""The checkout this package was installed from (editable install)."""
