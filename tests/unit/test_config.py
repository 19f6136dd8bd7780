"""Operator settings from LBAAS_* environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lbaas.config import OperatorSettings


def test_defaults_without_environment() -> None:
    s = OperatorSettings.from_env({})
    assert s == OperatorSettings()
    assert s.namespaces == []
    assert s.driver_timeout == 5.0
    assert s.driver_workers == 8


def test_parses_every_kind_of_value() -> None:
    s = OperatorSettings.from_env(
        {
            "LBAAS_NAMESPACES": " team-a, team-b,,team-c ,",
            "LBAAS_DRIVER_TIMEOUT": "2.5",
            "LBAAS_DRIVER_WORKERS": "16",
            "LBAAS_PROBE_INTERVAL": "1",
            "LBAAS_DEBOUNCE": "0",
            "LBAAS_LOG_FORMAT": "json",
            "LBAAS_LOG_LEVEL": "DEBUG",
            "LBAAS_METRICS_PORT": "0",
            "LBAAS_DELETE_ATTEMPTS": "2",
            "UNRELATED": "x",
            "LBAAS_UNKNOWN_SETTING": "ignored",
        }
    )
    assert s.namespaces == ["team-a", "team-b", "team-c"]
    assert s.driver_timeout == 2.5
    assert s.driver_workers == 16 and isinstance(s.driver_workers, int)
    assert s.probe_interval == 1.0 and isinstance(s.probe_interval, float)
    assert s.debounce == 0.0
    assert s.log_format == "json"
    assert s.log_level == "DEBUG"
    assert s.metrics_port == 0
    assert s.delete_attempts == 2
    assert s.health_port == 8090  # untouched default


def test_empty_values_mean_default() -> None:
    s = OperatorSettings.from_env({"LBAAS_DRIVER_TIMEOUT": "", "LBAAS_NAMESPACES": ""})
    assert s.driver_timeout == 5.0
    assert s.namespaces == []


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LBAAS_DRIVER_WORKERS", "3")
    monkeypatch.setenv("LBAAS_NAMESPACES", "one")
    s = OperatorSettings.from_env()
    assert s.driver_workers == 3
    assert s.namespaces == ["one"]


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("LBAAS_DRIVER_TIMEOUT", "soon", "driver_timeout"),
        ("LBAAS_DRIVER_TIMEOUT", "0", "driver_timeout"),
        ("LBAAS_DRIVER_TIMEOUT", "-1", "driver_timeout"),
        ("LBAAS_DRIVER_WORKERS", "1.5", "driver_workers"),
        ("LBAAS_DRIVER_WORKERS", "0", "driver_workers"),
        ("LBAAS_DRIVER_WORKERS", "257", "driver_workers"),
        ("LBAAS_DEBOUNCE", "-0.1", "debounce"),
        ("LBAAS_LOG_FORMAT", "xml", "log_format"),
        ("LBAAS_METRICS_PORT", "65536", "metrics_port"),
        ("LBAAS_HEALTH_PORT", "http", "health_port"),
        ("LBAAS_DELETE_ATTEMPTS", "0", "delete_attempts"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(variable: str, value: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        OperatorSettings.from_env({variable: value})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert field in str(info.value)
