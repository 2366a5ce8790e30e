from __future__ import annotations

from pathlib import Path

import pytest

from eco2.core.settings import Secret, Settings, SettingsError, mask_url

GOOD = {"JWT_SECRET": "x" * 40, "DATABASE_URL": "postgresql://u:pw@db/eco2", "REDIS_URL": "redis://r:6379/0"}


def test_reads_typed_values() -> None:
    s = Settings.from_env(
        {**GOOD, "ALLOWED_ORIGINS": "https://app.example.com, http://127.0.0.1:5173/", "WORKERS": "2"},
        uses=("db", "redis", "jwt"),
    )
    assert s.allowed_origins == ("https://app.example.com", "http://127.0.0.1:5173")
    assert s.workers == 2 and s.environment == "production" and s.cookie_secure is True


def test_missing_required_values_are_listed_together() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"WORKERS": "zero", "ALLOWED_ORIGINS": "*"}, uses=("db", "redis", "jwt"))
    text = str(info.value)
    for expected in (
        "DATABASE_URL: required",
        "REDIS_URL: required",
        "JWT_SECRET: required",
        "WORKERS: expected an integer",
        "ALLOWED_ORIGINS",
    ):
        assert expected in text


def test_only_what_the_function_uses_is_required() -> None:
    Settings.from_env({}, uses=())  # a function with no clients needs nothing


def test_dev_login_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="DEV_LOGIN_ENABLED"):
        Settings.from_env({**GOOD, "DEV_LOGIN_ENABLED": "true"})


def test_secrets_never_show() -> None:
    s = Settings.from_env({**GOOD, "OPENAI_API_KEY": "sk-verysecret"}, uses=("db",))
    text = repr(s) + str(s.describe())
    assert "verysecret" not in text and "pw@" not in text and "xxxxxxxx" not in text
    assert s.describe()["database_url"] == "postgresql://u:***@db/eco2"
    assert s.openai_api_key.get() == "sk-verysecret"
    assert repr(Secret("a")) == "Secret('**********')"
    assert mask_url("redis://localhost:6379") == "redis://localhost:6379"


def test_no_environment_falls_back_to_a_constant_jwt_secret() -> None:
    for environment in ("development", "test", "production"):
        with pytest.raises(SettingsError, match="JWT_SECRET"):
            Settings.from_env({"ECO2_ENV": environment}, uses=("jwt",))
    s = Settings.from_env({"ECO2_ENV": "development", "JWT_SECRET": "d" * 40}, uses=("jwt",))
    assert s.cookie_secure is False


def test_eco2_dev_makes_one_random_secret_per_data_directory(tmp_path: Path) -> None:
    from eco2.tooling.dev import dev_secret

    first, other = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    other.mkdir()
    secret = dev_secret(first)
    assert len(secret) >= 32 and dev_secret(first) == secret  # kept: a restart keeps the sessions
    assert dev_secret(other) != secret
    assert (first / "jwt-secret").stat().st_mode & 0o077 == 0  # the owner's only


def test_a_function_section_is_read_from_the_environment_and_lists_every_problem() -> None:
    from pydantic import BaseModel, Field, SecretStr

    from eco2.core.settings import read_section

    class Places(BaseModel):
        places_base_url: str = "https://dapi.kakao.com"
        places_api_key: SecretStr = SecretStr("")
        places_timeout: float = Field(2.0, gt=0)
        places_limit: int = 15

    section = read_section(Places, {"PLACES_API_KEY": "k-123", "PLACES_TIMEOUT": "0.5"})
    assert section.places_api_key.get_secret_value() == "k-123" and section.places_timeout == 0.5
    assert "k-123" not in repr(section)
    with pytest.raises(SettingsError) as caught:
        read_section(Places, {"PLACES_TIMEOUT": "-1", "PLACES_LIMIT": "many"})
    message = str(caught.value)
    assert "PLACES_TIMEOUT:" in message and "PLACES_LIMIT:" in message
