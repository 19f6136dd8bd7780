"""The few Kubernetes API calls the operator makes itself, outside kopf's handler patches.

kopf patches the object a handler runs for; the tree worker also writes the status of the
other objects of a VIP's tree, and reads Device credentials. Calls are blocking (the
``kubernetes`` client) and are run in threads by the callers.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from lbaas import GROUP, VERSION

log = logging.getLogger(__name__)

PLURALS = {
    "VIP": "vips",
    "Pool": "pools",
    "Member": "members",
    "HealthMonitor": "healthmonitors",
    "Device": "devices",
}


def _configuration() -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        # Explicit: the client reads $KUBECONFIG only once, when it is first imported.
        kubernetes.config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    configuration.connection_pool_maxsize = 32
    return configuration


class Kube:
    def __init__(self) -> None:
        client = kubernetes.client.ApiClient(_configuration())
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)

    def patch_status(
        self, kind: str, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> bool:
        """Merge-patch the status subresource; False when the object is gone."""
        body = {"status": dict(status)}
        try:
            if namespace:
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURALS[kind], name, body
                )
            else:
                self.custom.patch_cluster_custom_object_status(
                    GROUP, VERSION, PLURALS[kind], name, body
                )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
