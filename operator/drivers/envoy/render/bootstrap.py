"""The bootstrap Envoy starts from: who it is, where its admin API listens, where LDS and CDS
come from. Nothing of any tree is in it, so it never changes while the device config does not.

- Admin on a UNIX socket in the state dir (mode 0600): never on the VIP network, no port to
  allocate, reachable only by the operator's user.
- LDS and CDS from files (``path_config_source``), each file in a directory of its own that
  Envoy watches (``watched_directory``): a file renamed into it is a new version. The driver
  writes every file to a temporary name beside it and renames it (``toolkit.files``).
- Runtime: RE2's program-size limit raised to ``checks.RE2_PROGRAM_SIZE`` (checked per regex).
"""

from __future__ import annotations

import json
from typing import Any

from lbaas.drivers.envoy.config import DevicePaths
from lbaas.drivers.envoy.render.checks import RE2_PROGRAM_SIZE


def _source(path: Any) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
    }


def render_bootstrap(paths: DevicePaths, node: str) -> str:
    bootstrap = {
        "node": {"id": node, "cluster": "lbaas"},
        "admin": {"address": {"pipe": {"path": str(paths.admin_socket), "mode": 0o600}}},
        "dynamic_resources": {"lds_config": _source(paths.lds), "cds_config": _source(paths.cds)},
        "layered_runtime": {
            "layers": [
                {
                    "name": "lbaas",
                    "static_layer": {"re2.max_program_size.error_level": RE2_PROGRAM_SIZE},
                }
            ]
        },
    }
    return json.dumps(bootstrap, indent=1, sort_keys=True) + "\n"
