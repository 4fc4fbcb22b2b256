"""Every setting of the wrapper, read once from the environment.

This is the only module that reads ``os.environ``: everything else receives a
``Settings`` object, so a test can build one with ``Settings.from_env(env)`` or
``dataclasses.replace`` and never has to patch the process environment.
The README's settings table lists each variable below; keep the two in step
(a test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

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


COMFYUI_LOG_LEVELS = ("none", "error", "warning", "info", "all")
OUTPUT_METADATA = ("workflow", "none")


@dataclass(frozen=True)
class Settings:
    """All tunables. Field comments name the environment variable."""

    # --- ComfyUI install and process -------------------------------------
    comfyui_dir: Path  # CW_COMFYUI_DIR
    runtime_dir: Path  # CW_RUNTIME_DIR (input/ output/ temp/ results/ and logs)
    host: str = "127.0.0.1"  # CW_COMFYUI_HOST
    port: int = 0  # CW_COMFYUI_PORT (0 = pick a free port)
    boot_timeout_s: float = 180.0  # CW_BOOT_TIMEOUT
    force_cpu: bool = False  # CW_FORCE_CPU
    extra_args: tuple[str, ...] = ()  # CW_COMFYUI_EXTRA_ARGS (space separated)
    extra_model_paths: tuple[Path, ...] = ()  # CW_EXTRA_MODEL_PATHS (extra_model_paths YAML files, ':' separated)
    comfyui_log_level: str = "info"  # CW_COMFYUI_LOG_LEVEL (which of ComfyUI's own lines reach our log)
    comfyui_log_max_bytes: int = 20 * 1024**2  # CW_COMFYUI_LOG_MAX_BYTES (runtime/comfyui.log, then one .1)

    # --- a prediction ----------------------------------------------------
    prediction_timeout_s: float = 1800.0  # CW_PREDICTION_TIMEOUT
    stall_timeout_s: float = 600.0  # CW_STALL_TIMEOUT (no progress event of our prompt)
    output_metadata: str = "workflow"  # CW_OUTPUT_METADATA (what returned images embed: workflow | none)

    # --- weights ---------------------------------------------------------
    manifest_path: Path = REPO_ROOT / "weights_manifest.json"  # CW_WEIGHTS_MANIFEST
    weights_dir: Path = REPO_ROOT / ".cache" / "weights"  # CW_WEIGHTS_DIR
    weights_budget_bytes: int = 0  # CW_WEIGHTS_BUDGET (0 = no limit)
    download_connections: int = 8  # CW_DOWNLOAD_CONNECTIONS (ranged parts per file)
    download_parallel_files: int = 4  # CW_DOWNLOAD_PARALLEL_FILES
    download_timeout_s: float = 30.0  # CW_DOWNLOAD_TIMEOUT (per request, connect and read)
    warm_weights: tuple[str, ...] = ()  # CW_WARM_WEIGHTS (manifest names or folder=URL, comma separated)
    hf_token: str = field(default="", repr=False)  # HF_TOKEN
    civitai_token: str = field(default="", repr=False)  # CIVITAI_API_TOKEN

    # --- inputs ----------------------------------------------------------
    allow_private_urls: bool = False  # CW_ALLOW_PRIVATE_URLS
    max_input_bytes: int = 2 * 1024**3  # CW_MAX_INPUT_BYTES (download and extraction total)
    max_archive_files: int = 10_000  # CW_MAX_ARCHIVE_FILES
    max_compression_ratio: float = 200.0  # CW_MAX_COMPRESSION_RATIO
    url_timeout_s: float = 30.0  # CW_URL_TIMEOUT
    url_total_timeout_s: float = 300.0  # CW_URL_TOTAL_TIMEOUT (a whole input download)

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
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            comfyui_dir=_path(env, "CW_COMFYUI_DIR", REPO_ROOT / "ComfyUI"),
            runtime_dir=_path(env, "CW_RUNTIME_DIR", REPO_ROOT / "runtime"),
            host=env.get("CW_COMFYUI_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "CW_COMFYUI_PORT", 0),
            boot_timeout_s=_float(env, "CW_BOOT_TIMEOUT", 180.0),
            force_cpu=_bool(env, "CW_FORCE_CPU", False),
            extra_args=tuple(env.get("CW_COMFYUI_EXTRA_ARGS", "").split()),
            extra_model_paths=tuple(
                Path(p).expanduser().resolve() for p in env.get("CW_EXTRA_MODEL_PATHS", "").split(os.pathsep) if p.strip()
            ),
            comfyui_log_level=_choice(env, "CW_COMFYUI_LOG_LEVEL", "info", COMFYUI_LOG_LEVELS),
            comfyui_log_max_bytes=_bytes(env, "CW_COMFYUI_LOG_MAX_BYTES", 20 * 1024**2),
            prediction_timeout_s=_float(env, "CW_PREDICTION_TIMEOUT", 1800.0),
            stall_timeout_s=_float(env, "CW_STALL_TIMEOUT", 600.0),
            output_metadata=_choice(env, "CW_OUTPUT_METADATA", "workflow", OUTPUT_METADATA),
            manifest_path=_path(env, "CW_WEIGHTS_MANIFEST", REPO_ROOT / "weights_manifest.json"),
            weights_dir=_path(env, "CW_WEIGHTS_DIR", REPO_ROOT / ".cache" / "weights"),
            weights_budget_bytes=_bytes(env, "CW_WEIGHTS_BUDGET", 0),
            download_connections=_int(env, "CW_DOWNLOAD_CONNECTIONS", 8),
            download_parallel_files=_int(env, "CW_DOWNLOAD_PARALLEL_FILES", 4),
            download_timeout_s=_float(env, "CW_DOWNLOAD_TIMEOUT", 30.0),
            warm_weights=tuple(item.strip() for item in env.get("CW_WARM_WEIGHTS", "").split(",") if item.strip()),
            hf_token=env.get("HF_TOKEN", "").strip(),
            civitai_token=env.get("CIVITAI_API_TOKEN", "").strip(),
            allow_private_urls=_bool(env, "CW_ALLOW_PRIVATE_URLS", False),
            max_input_bytes=_bytes(env, "CW_MAX_INPUT_BYTES", 2 * 1024**3),
            max_archive_files=_int(env, "CW_MAX_ARCHIVE_FILES", 10_000),
            max_compression_ratio=_float(env, "CW_MAX_COMPRESSION_RATIO", 200.0),
            url_timeout_s=_float(env, "CW_URL_TIMEOUT", 30.0),
            url_total_timeout_s=_float(env, "CW_URL_TOTAL_TIMEOUT", 300.0),
        )


def setting_names() -> list[str]:
    """The environment variables Settings reads, in order (for the README table's test)."""
    import inspect
    import re

    source = inspect.getsource(Settings.from_env)
    return list(dict.fromkeys(re.findall(r'"((?:CW|HF|CIVITAI)_[A-Z0-9_]+)"', source)))
