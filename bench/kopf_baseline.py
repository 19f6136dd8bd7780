"""The baseline of issue 13: a bare kopf operator whose only handler marks each object Active.

It measures what kopf itself costs on the same objects (``kopf run --standalone
--namespace=NS bench/kopf_baseline.py``): per-object handler machinery, its diff-base
annotation and one status patch. ``message: baseline`` tells its writes from the operator's.
"""

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False


def _active(patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Active"
    patch.status["message"] = "baseline"


for _plural in ("vips", "pools", "members", "healthmonitors"):
    kopf.on.create("lbaas.dev", "v1alpha1", _plural, id="active")(_active)
    kopf.on.resume("lbaas.dev", "v1alpha1", _plural, id="active")(_active)
