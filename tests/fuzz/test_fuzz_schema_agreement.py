"""The API server and the models agree (issue 22): a spec the API server accepts is one the
operator's models accept.

The other fuzz properties draw specs from the CRD schema and keep those the models accept
(``fuzz.schema.specs``): a spec the API server takes but a model refuses would be dropped
there without a word, and in a cluster it is an object the operator cannot read (status
``InvalidSpec`` at best, where the tenant was told "created"). Here every kind's specs are
drawn from the schema *unfiltered*, each is sent to the real API server (a server-side dry
run: nothing is stored) and to the model, and the test fails on any the server accepts and
the model refuses, naming the spec and the model's complaint. The reverse (the model takes
what the server refuses) is harmless, and only counted (``hypothesis`` statistics).

The CRDs are generated from the models (``make crds``), so a mismatch is fixed in the model:
a rule the model checks in Python that the schema does not state (a CEL rule it lacks), or a
pattern or type that reads differently in the two. Each fix has its case in
``tests/unit/test_crds.py`` as well.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz.schema import FUZZ, from_schema, spec_schema
from hypothesis import event, given
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from helpers import GROUP, VERSION, Api, kubectl
from lbaas.api import KINDS

pytestmark = pytest.mark.cluster

MODELS: dict[str, tuple[str, type[BaseModel], bool]] = {
    info.kind: (info.plural, info.spec, info.namespaced) for info in KINDS
}
STRATEGIES = {kind: from_schema(spec_schema(plural), "") for kind, (plural, _, _) in MODELS.items()}


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> Iterator[Api]:
    yield Api()


@pytest.fixture(scope="module")
def fuzz_namespace(kubeconfig: str) -> Iterator[str]:
    name = f"fz-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def server_verdict(api: Api, kind: str, namespace: str, spec: dict[str, Any]) -> str | None:
    """None when the API server accepts ``spec`` (dry run), else its message."""
    plural, _, namespaced = MODELS[kind]
    meta: dict[str, Any] = {"name": "fuzz"}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta, "spec": spec}
    try:
        if namespaced:
            api.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body, dry_run="All", field_validation="Strict"
            )
        else:
            api.custom.create_cluster_custom_object(
                GROUP, VERSION, plural, body, dry_run="All", field_validation="Strict"
            )
    except ApiException as exc:
        if exc.status not in (400, 422):
            raise
        return str(json.loads(exc.body or "{}").get("message", exc.body))
    return None


def model_verdict(kind: str, spec: dict[str, Any]) -> str | None:
    """None when the model accepts ``spec``, else its complaint."""
    try:
        MODELS[kind][1].model_validate(spec)
    except ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("kind", sorted(MODELS))
@given(data=st.data())
@FUZZ
def test_what_the_api_server_accepts_the_model_accepts(
    api: Api, fuzz_namespace: str, kind: str, data: st.DataObject
) -> None:
    spec = data.draw(STRATEGIES[kind], label="spec")
    server = server_verdict(api, kind, fuzz_namespace, spec)
    model = model_verdict(kind, spec)
    event(f"{kind}: server {'accepts' if server is None else 'refuses'},"
          f" model {'accepts' if model is None else 'refuses'}")  # fmt: skip
    assert server is not None or model is None, (
        f"the API server accepts this {kind} spec but the model refuses it:\n"
        f"{json.dumps(spec, indent=1)}\nmodel: {model}"
    )
