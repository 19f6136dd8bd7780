"""The settings every bench part runs the operator with: the product's defaults.

The tests' OperatorProcess shortens intervals (probes and member status every second, a 6 s
lease) so tests end sooner; figures measured that way flatter or penalise the operator in
ways a user never sees. :func:`product_env` gives every ``LBAAS_*`` setting its default from
``lbaas.config.OperatorSettings`` itself (never a copy that could drift); a part that needs
another value passes it, and says so in its title (:func:`settings_note`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import OperatorProcess
from lbaas.config import ENV_PREFIX, OperatorSettings

PER_PROCESS = {"agent_id", "lease_namespace", "namespaces", "agent_labels", "metrics_port",
               "health_port"}  # fmt: skip
"""Settings each process or part sets for itself (identity, scope, ports)."""
NOTED = {
    "LBAAS_MEMBER_STATUS_INTERVAL": "member status {} s",
    "LBAAS_RESYNC_INTERVAL": "resync {} s",
    "LBAAS_PROBE_INTERVAL": "probe {} s",
    "LBAAS_DRIVER_WORKERS": "{} driver workers",
    "LBAAS_DRIVER_TIMEOUT": "driver timeout {} s",
    "LBAAS_LEASE_DURATION": "lease {} s",
    "LBAAS_LEASE_RENEW_PERIOD": "renew {} s",
    "LBAAS_PARENT_TIMEOUT": "parent timeout {} s",
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def defaults() -> dict[str, str]:
    settings = OperatorSettings(agent_id="bench", lease_namespace="bench").model_dump()
    return {
        ENV_PREFIX + name.upper(): _text(value)
        for name, value in settings.items()
        if name not in PER_PROCESS
    }


def product_env(**overrides: str) -> dict[str, str]:
    """Every setting at the product's default, then ``overrides``."""
    return {**defaults(), **overrides}


def settings_note(**overrides: str) -> str:
    """What a part's title says about its settings: the defaults, and what differs."""
    base = defaults()
    shown = [NOTED[k].format(base[k]) for k in NOTED if k not in overrides]
    changed = [
        (NOTED[k] if k in NOTED else k + " {}").format(v)
        for k, v in overrides.items()
        if k.startswith(ENV_PREFIX)
        and base.get(k) != v
        and k[len(ENV_PREFIX) :].lower() not in PER_PROCESS
    ]
    note = "product defaults (" + ", ".join(shown[:4]) + ")"
    return note + ("; changed: " + ", ".join(changed) if changed else "")


def operator(log: Path, **env: str) -> OperatorProcess:
    """The tests' OperatorProcess (ports, Lease namespace, agent id) with product settings."""
    return OperatorProcess(log, **product_env(**env))
