"""Start the operator: logging, metrics, the engine, and kopf with our handler registry."""

from __future__ import annotations

import logging

import kopf

from lbaas import metrics
from lbaas.config import OperatorSettings
from lbaas.dispatch import Engine
from lbaas.handlers import build_registry


def run(settings: OperatorSettings) -> None:
    kopf.configure(
        verbose=settings.log_level.upper() == "DEBUG",
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger().setLevel(settings.log_level.upper())
    metrics.start_server(settings.metrics_port)
    engine = Engine(settings)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        registry=build_registry(settings),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(engine=engine),
    )
