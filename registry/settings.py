"""Runtime settings, all optional, read from GEOCREDIT_* environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEOCREDIT_", extra="ignore")

    database_url: str | None = None
    """postgresql+psycopg://… of an external server; unset → the embedded server in data_dir."""
    data_dir: Path = Path("~/.local/share/geocredit")
    platform_url: str = "http://127.0.0.1:8765"
    """The SensorThings service root, without /v1.1."""
    env: Literal["development", "production"] = "development"
    audit_key_file: Path | None = None
    """The Ed25519 key that signs audit checkpoints; unset → <data_dir>/audit/signing.key."""

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
