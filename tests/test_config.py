"""Configuration: validation with key paths, ${ENV} substitution, documentation of every key."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pipsync_lite.config import Config, load_config, parse_config, redacted
from pipsync_lite.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
ENV = {
    "PIPSYNC_API_TOKEN": "a-long-random-api-token",
    "PIPSYNC_WEBHOOK_TOKEN": "a-long-random-webhook-token",
    "CTRADER_CLIENT_ID": "1234_abc",
    "CTRADER_CLIENT_SECRET": "client-secret-value",
    "CTRADER_ACCESS_TOKEN": "access-token-value",
    "CTRADER_REFRESH_TOKEN": "refresh-token-value",
}

MINIMAL = """
server: {webhook_token: a-long-random-webhook-token}
ctrader: {client_id: x, client_secret: the-client-secret, access_token: the-access-token, account_id: 7}
"""


def errors_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, environ=environ or {})
    return info.value.errors


def test_example_config_is_valid_with_its_environment_variables() -> None:
    config = load_config(EXAMPLE, environ=ENV)
    assert config.ctrader.client_secret.get_secret_value() == "client-secret-value"
    assert config.ctrader.resolved_host == "demo.ctraderapi.com"
    assert config.storage.path == ROOT / "pipsync-lite.db"  # relative to the YAML file


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys |= _keys(field.annotation, f"{prefix}{name}.")
    return keys


def _documented(node: object, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(prefix + str(key))
            if prefix + str(key) != "symbols.map":  # its keys are user data, not settings
                keys |= _documented(value, f"{prefix}{key}.")
    return keys


def test_every_key_is_in_the_example_with_a_comment() -> None:
    text = EXAMPLE.read_text()
    documented = _documented(yaml.safe_load(text))
    missing = _keys(Config) - documented
    assert not missing, f"keys missing from config.example.yaml: {sorted(missing)}"
    # Each setting line sits under a comment (consecutive settings may share one).
    lines = [line.strip() for line in text.splitlines()]
    for number, line in enumerate(lines):
        if not line or line.startswith("#") or line.endswith(":") or "map:" in lines[number - 1]:
            continue
        above = number - 1
        while above >= 0 and lines[above] and not lines[above].startswith("#") and not lines[above].endswith(":"):
            above -= 1
        assert lines[above].startswith("#"), f"no comment above {line!r}"


def test_errors_name_the_key_path_and_the_numbers() -> None:
    errs = errors_of(MINIMAL + "risk: {max_lots: -1}")
    assert errs == ["risk.max_lots: must be > 0, got -1"]


def test_unknown_keys_are_errors_with_a_suggestion() -> None:
    errs = errors_of(MINIMAL + "risk: {max_lot: 2}")
    assert errs == ["risk.max_lot: unknown key (did you mean max_lots?)"]
    assert errors_of(MINIMAL + "riskk: {}") == ["riskk: unknown key (did you mean risk?)"]


def test_missing_environment_variable_is_named() -> None:
    errs = errors_of(MINIMAL.replace("the-access-token", "'${TOKEN_X}'"))
    assert errs == ["ctrader.access_token: environment variable TOKEN_X is not set"]


def test_environment_variables_are_substituted_inside_values() -> None:
    config = parse_config(MINIMAL.replace("client_id: x", "client_id: 'app-${N}'"), environ={"N": "42"})
    assert config.ctrader.client_id == "app-42"


def test_all_errors_are_reported_at_once_and_secrets_are_not_echoed() -> None:
    errs = errors_of("server: {webhook_token: short-secret}\nctrader: {account_id: 0, port: 70000}")
    assert "server.webhook_token: must be at least 16 characters (use a random string), got <redacted>" in errs
    assert "ctrader.account_id: must be > 0, got 0" in errs
    assert "ctrader.port: must be <= 65535, got 70000" in errs
    assert "ctrader.client_secret: required" in errs
    assert not any("short-secret" in e for e in errs)


def test_enum_values_are_case_insensitive() -> None:
    config = parse_config(MINIMAL + "logging: {level: DEBUG, format: Json}\nctrader_env: 1".replace("\nctrader_env: 1", ""))
    assert config.logging.level == "debug" and config.logging.format == "json"
    assert errors_of(MINIMAL + "logging: {level: loud}") == [
        "logging.level: must be one of 'debug', 'info', 'warning' or 'error', got 'loud'"
    ]


def test_cross_field_check_default_lots_within_max_lots() -> None:
    errs = errors_of(MINIMAL + "risk: {default_lots: 2, max_lots: 1}")
    assert errs == ["risk: default_lots 2 > max_lots 1: every default-sized entry would be rejected, got {'default_lots': 2, 'max_lots': 1}"]


def test_models_are_frozen_and_decimal_exact() -> None:
    config = parse_config(MINIMAL + "risk: {default_lots: 0.1}")
    assert config.risk.default_lots == Decimal("0.1")
    with pytest.raises(Exception):
        config.risk.default_lots = Decimal(1)  # type: ignore[misc]


def test_redacted_masks_every_secret() -> None:
    config = parse_config(MINIMAL)
    dumped = str(redacted(config))
    for secret in config.secrets():
        assert secret not in dumped


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipsync_lite", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_check_config_exits_0_for_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(MINIMAL)
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_prints_errors_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL + "risk: {max_lots: -1}")
    result = _cli("check-config", "-c", str(path))
    assert result.returncode == 2
    assert "risk.max_lots: must be > 0, got -1" in result.stderr
