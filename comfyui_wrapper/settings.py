"""Every setting of the wrapper, read once from the environment.

This is the only module that reads ``os.environ``: everything else receives a
``Settings`` object, so a test can build one with ``Settings.from_env(env)`` or
``dataclasses.replace`` and never has to patch the process environment.
The README's settings table lists each variable below; keep the two in step
(a test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, get_args

REPO_ROOT = Path(__file__).resolve().parent.parent


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Setting {name}={value!r} must be a whole number.") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"Setting {name}={value!r} must be a number.") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"Setting {name}={value!r} must be true or false (1/0).")


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    """Byte counts accept plain integers or a unit suffix: 500M, 20G, 1.5T."""
    value = env.get(name, "").strip()
    if not value:
        return default
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    suffix = value[-1].upper()
    try:
        if suffix in units:
            return int(float(value[:-1]) * units[suffix])
        return int(value)
    except ValueError:
        raise ValueError(f"Setting {name}={value!r} must be a byte count such as 500M or 20G.") from None


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ValueError(f"Setting {name}={value!r} must be one of {', '.join(choices)}.")
    return value


def _choices(*choices: str) -> Callable[[Mapping[str, str], str, str], str]:
    return lambda env, name, default: _choice(env, name, default, choices)


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def _words(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Space separated (CW_COMFYUI_EXTRA_ARGS)."""
    return tuple(env.get(name, "").split()) or default


def _paths(env: Mapping[str, str], name: str, default: tuple[Path, ...]) -> tuple[Path, ...]:
    """os.pathsep separated (CW_EXTRA_MODEL_PATHS)."""
    found = tuple(Path(p).expanduser().resolve() for p in env.get(name, "").split(os.pathsep) if p.strip())
    return found or default


def _items(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma separated (CW_WARM_WEIGHTS)."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip()) or default


def _setting(env_name: str, default: Any, read: Callable[[Mapping[str, str], str, Any], Any], **options: Any) -> Any:
    """A field read from ``env_name`` by ``read``; its default is written here once."""
    return field(default=default, metadata={"env": env_name, "read": read}, **options)


ComfyLogLevel = Literal["none", "error", "warning", "info", "all"]  # which of ComfyUI's own lines we log
OutputMetadata = Literal["workflow", "none"]  # what returned images embed
COMFYUI_LOG_LEVELS: tuple[ComfyLogLevel, ...] = get_args(ComfyLogLevel)
OUTPUT_METADATA: tuple[OutputMetadata, ...] = get_args(OutputMetadata)


@dataclass(frozen=True)
class Settings:
    """All tunables; each field names its environment variable and holds its one default."""

    # --- ComfyUI install and process -------------------------------------
    comfyui_dir: Path = _setting("CW_COMFYUI_DIR", REPO_ROOT / "ComfyUI", _path)
    runtime_dir: Path = _setting("CW_RUNTIME_DIR", REPO_ROOT / "runtime", _path)  # input/ output/ temp/ results/, logs
    host: str = _setting("CW_COMFYUI_HOST", "127.0.0.1", _text)
    port: int = _setting("CW_COMFYUI_PORT", 0, _int)  # 0 = pick a free port
    boot_timeout_s: float = _setting("CW_BOOT_TIMEOUT", 180.0, _float)
    force_cpu: bool = _setting("CW_FORCE_CPU", False, _bool)
    extra_args: tuple[str, ...] = _setting("CW_COMFYUI_EXTRA_ARGS", (), _words)
    extra_model_paths: tuple[Path, ...] = _setting("CW_EXTRA_MODEL_PATHS", (), _paths)  # extra_model_paths YAML files
    comfyui_log_level: ComfyLogLevel = _setting("CW_COMFYUI_LOG_LEVEL", "info", _choices(*COMFYUI_LOG_LEVELS))  # ComfyUI's lines we log
    comfyui_log_max_bytes: int = _setting("CW_COMFYUI_LOG_MAX_BYTES", 20 * 1024**2, _bytes)  # comfyui.log, then one .1

    # --- a prediction ----------------------------------------------------
    prediction_timeout_s: float = _setting("CW_PREDICTION_TIMEOUT", 1800.0, _float)
    stall_timeout_s: float = _setting("CW_STALL_TIMEOUT", 600.0, _float)  # no progress event of our prompt
    output_metadata: OutputMetadata = _setting("CW_OUTPUT_METADATA", "workflow", _choices(*OUTPUT_METADATA))  # what images embed

    # --- weights ---------------------------------------------------------
    manifest_path: Path = _setting("CW_WEIGHTS_MANIFEST", REPO_ROOT / "weights_manifest.json", _path)
    weights_dir: Path = _setting("CW_WEIGHTS_DIR", REPO_ROOT / ".cache" / "weights", _path)
    weights_budget_bytes: int = _setting("CW_WEIGHTS_BUDGET", 0, _bytes)  # 0 = no limit
    download_connections: int = _setting("CW_DOWNLOAD_CONNECTIONS", 8, _int)  # ranged parts per file
    download_parallel_files: int = _setting("CW_DOWNLOAD_PARALLEL_FILES", 4, _int)
    download_timeout_s: float = _setting("CW_DOWNLOAD_TIMEOUT", 30.0, _float)  # per request, connect and read
    warm_weights: tuple[str, ...] = _setting("CW_WARM_WEIGHTS", (), _items)  # manifest names or folder=URL
    hf_token: str = _setting("HF_TOKEN", "", _text, repr=False)
    civitai_token: str = _setting("CIVITAI_API_TOKEN", "", _text, repr=False)

    # --- inputs ----------------------------------------------------------
    allow_private_urls: bool = _setting("CW_ALLOW_PRIVATE_URLS", False, _bool)
    max_input_bytes: int = _setting("CW_MAX_INPUT_BYTES", 2 * 1024**3, _bytes)  # download and extraction total
    max_archive_files: int = _setting("CW_MAX_ARCHIVE_FILES", 10_000, _int)
    max_compression_ratio: float = _setting("CW_MAX_COMPRESSION_RATIO", 200.0, _float)
    url_timeout_s: float = _setting("CW_URL_TIMEOUT", 30.0, _float)
    url_total_timeout_s: float = _setting("CW_URL_TOTAL_TIMEOUT", 300.0, _float)  # a whole input download

    @property
    def input_dir(self) -> Path:
        return self.runtime_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.runtime_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.runtime_dir / "temp"

    @property
    def results_dir(self) -> Path:
        """Where a prediction's returned files live until the next prediction."""
        return self.runtime_dir / "results"

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "comfyui.log"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each field from its environment variable (named in the field), else the field's default."""
        env = os.environ if env is None else env
        return cls(**{f.name: f.metadata["read"](env, f.metadata["env"], f.default) for f in fields(cls)})


def setting_names() -> list[str]:
    """The environment variables Settings reads, in field order (for the README table's test)."""
    return [f.metadata["env"] for f in fields(Settings)]
