"""Configuration: resolved once into frozen objects and passed down, never read at import time.

Precedence is CLI flag > environment variable (``CAIRN_*``) > default. ``Settings.resolve`` takes the
already-parsed flags and an environment mapping (``os.environ`` in production, a dict in tests), so
nothing in Cairn reads the process environment on its own.

Every variable is listed in ``ENVIRONMENT`` with its meaning; the README's configuration table and the
CLI help are checked against it by the test suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-call sandbox limits. Defaults suit an interactive agent."""

    cpu_seconds: float = 2.0
    wall_seconds: float = 5.0
    memory_mib: int = 256
    result_bytes: int = 1 * MiB
    output_bytes: int = 64 * 1024
    argument_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ConfigError(f"limit {f.name} must be positive, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Everything a Cairn process needs to know, resolved once."""

    registry: Path = Path("registry")
    limits: Limits = field(default_factory=Limits)
    pool_size: int = 2
    worker_max_calls: int = 500
    exposed_tools: int = 100
    pinned: tuple[str, ...] = ()
    watch_interval: float = 0.5
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    log_level: str = "INFO"
    duplicates: str = "warn"
    search: str = "auto"

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Merge CLI flags (None means 'not given') over ``CAIRN_*`` variables over defaults."""
        flags = {k: v for k, v in (flags or {}).items() if v is not None}
        environ = environ or {}
        values: dict[str, Any] = {}
        limit_values: dict[str, Any] = {}
        for key, (env_name, convert, _help) in ENVIRONMENT.items():
            raw: Any = flags.get(key)
            source = f"--{key.replace('_', '-')}"
            if raw is None and env_name in environ and environ[env_name] != "":
                raw, source = environ[env_name], env_name
            if raw is None:
                continue
            try:
                value = convert(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: cannot read {raw!r}: {exc}") from None
            if key in _LIMIT_FIELDS:
                limit_values[key] = value
            else:
                values[key] = value
        if limit_values:
            values["limits"] = Limits(**limit_values)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.pool_size < 1:
            raise ConfigError(f"pool size must be at least 1, got {self.pool_size}")
        if self.exposed_tools < 0:
            raise ConfigError(f"exposed tools must be 0 or more, got {self.exposed_tools}")
        if self.duplicates not in ("warn", "refuse", "off"):
            raise ConfigError(f"duplicates must be warn, refuse or off, got {self.duplicates!r}")
        if self.search not in ("auto", "lexical", "hybrid"):
            raise ConfigError(f"search must be auto, lexical or hybrid, got {self.search!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1-65535, got {self.port}")


def _path(raw: Any) -> Path:
    return Path(raw).expanduser()


def _names(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        return tuple(str(x) for x in raw)
    return tuple(part.strip() for part in str(raw).split(",") if part.strip())


def _level(raw: Any) -> str:
    level = str(raw).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


_LIMIT_FIELDS = {f.name for f in dataclasses.fields(Limits)}

# setting name -> (environment variable, converter, meaning). The single list of every variable.
ENVIRONMENT: dict[str, tuple[str, Any, str]] = {
    "registry": ("CAIRN_REGISTRY", _path, "registry folder (default ./registry)"),
    "cpu_seconds": ("CAIRN_CPU_SECONDS", float, "CPU seconds per sandboxed call (default 2)"),
    "wall_seconds": ("CAIRN_WALL_SECONDS", float, "wall-clock seconds per sandboxed call (default 5)"),
    "memory_mib": ("CAIRN_MEMORY_MIB", int, "address-space limit of a sandbox worker in MiB (default 256)"),
    "result_bytes": ("CAIRN_RESULT_BYTES", int, "largest JSON result of a call in bytes (default 1 MiB)"),
    "output_bytes": ("CAIRN_OUTPUT_BYTES", int, "most printed output kept per call in bytes (default 64 KiB)"),
    "argument_bytes": ("CAIRN_ARGUMENT_BYTES", int, "largest JSON arguments of a call in bytes (default 1 MiB)"),
    "pool_size": ("CAIRN_POOL_SIZE", int, "number of warm sandbox workers (default 2)"),
    "worker_max_calls": ("CAIRN_WORKER_MAX_CALLS", int, "calls a worker serves before it is recycled (default 500)"),
    "exposed_tools": ("CAIRN_EXPOSED_TOOLS", int, "registered tools listed first-class in tools/list (default 100)"),
    "pinned": ("CAIRN_PINNED", _names, "comma-separated tools always listed first (default none)"),
    "watch_interval": ("CAIRN_WATCH_INTERVAL", float, "seconds between checks for changes from elsewhere (default 0.5)"),
    "host": ("CAIRN_HOST", str, "HTTP bind address (default 127.0.0.1)"),
    "port": ("CAIRN_PORT", int, "HTTP port (default 8765)"),
    "token": ("CAIRN_TOKEN", str, "bearer token required on HTTP; mandatory off loopback"),
    "log_level": ("CAIRN_LOG_LEVEL", _level, "log level on stderr (default INFO)"),
    "duplicates": ("CAIRN_DUPLICATES", str, "a submission that behaves like an existing tool: warn, refuse or off"),
    "search": ("CAIRN_SEARCH", str, "search ranker: auto (hybrid when the semantic extra is installed), lexical or hybrid"),
}
