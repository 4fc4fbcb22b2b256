"""Settings: each field names its variable and holds its one default (they were written twice)."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from comfyui_wrapper.settings import Settings, setting_names


def test_an_empty_environment_gives_the_field_defaults():
    assert Settings.from_env({}) == Settings()
    assert all(f.metadata.get("env") for f in fields(Settings))
    assert len(set(setting_names())) == len(fields(Settings))


def test_each_kind_of_value_is_read():
    s = Settings.from_env({
        "CW_WEIGHTS_BUDGET": "1.5G", "CW_COMFYUI_EXTRA_ARGS": "--lowvram  --fp16-vae", "CW_FORCE_CPU": "yes",
        "CW_WARM_WEIGHTS": " a.safetensors, loras=https://h/x.safetensors ,", "CW_COMFYUI_LOG_LEVEL": "ALL",
        "CW_EXTRA_MODEL_PATHS": os.pathsep.join(["/tmp/a.yaml", " "]), "CW_BOOT_TIMEOUT": "2.5",
        "HF_TOKEN": " hf_x ", "CW_COMFYUI_HOST": " ",
    })
    assert s.weights_budget_bytes == int(1.5 * 1024**3) and s.extra_args == ("--lowvram", "--fp16-vae")
    assert s.force_cpu and s.warm_weights == ("a.safetensors", "loras=https://h/x.safetensors")
    assert s.comfyui_log_level == "all" and s.extra_model_paths == (Path("/tmp/a.yaml"),)
    assert s.boot_timeout_s == 2.5 and s.hf_token == "hf_x" and s.host == "127.0.0.1"
    assert "hf_x" not in repr(s)


@pytest.mark.parametrize("name,value", [("CW_BOOT_TIMEOUT", "soon"), ("CW_FORCE_CPU", "maybe"),
                                        ("CW_WEIGHTS_BUDGET", "lots"), ("CW_OUTPUT_METADATA", "exif")])
def test_a_bad_value_names_its_setting(name, value):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def _choice_fields() -> list[tuple[str, str, tuple[str, ...]]]:
    """(env var, field, allowed values) of every setting typed Literal[...]."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(Settings)
    return [(f.metadata["env"], f.name, typing.get_args(hints[f.name])) for f in dataclasses.fields(Settings)
            if typing.get_origin(hints[f.name]) is typing.Literal]


def test_every_choice_setting_names_its_variable_and_every_allowed_value():
    """Fields typed Literal[...] are read against exactly those values (one list: the Literal's)."""
    found = _choice_fields()
    assert {name for name, _, _ in found} >= {"CW_COMFYUI_LOG_LEVEL", "CW_OUTPUT_METADATA"}
    for name, field, allowed in found:
        with pytest.raises(ValueError) as caught:
            Settings.from_env({name: "no-such-choice"})
        message = str(caught.value)
        assert name in message and "'no-such-choice'" in message and all(a in message for a in allowed)
        for choice in allowed:
            assert getattr(Settings.from_env({name: f" {choice.upper()} "}), field) == choice


def test_every_comfyui_log_level_has_a_threshold():
    from comfyui_wrapper.server.progress import COMFYUI_LEVELS
    from comfyui_wrapper.settings import COMFYUI_LOG_LEVELS

    assert set(COMFYUI_LEVELS) == set(COMFYUI_LOG_LEVELS)
