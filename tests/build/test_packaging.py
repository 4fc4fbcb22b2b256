"""cog.yaml, the pinned requirements, the OpenAPI schema and the README stay in step with the code."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from comfyui_wrapper.settings import setting_names

REPO = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_cog_yaml_torch_pins_equal_the_constraints():
    cog = yaml.safe_load((REPO / "cog.yaml").read_text())
    cog_pins = pins(REPO / cog["build"]["python_requirements"])
    constraints = pins(REPO / "requirements" / "constraints.txt")
    for package, version in {"torch": "2.14.1", "torchvision": "0.29.1", "torchaudio": "2.11.0"}.items():
        assert cog_pins[package] == constraints[package] == version
    assert cog["build"]["gpu"] is True and cog["build"]["python_version"] == "3.11"


def test_cog_requirements_file_is_generated_from_the_constraints():
    result = subprocess.run([sys.executable, "scripts/write_cog_requirements.py", "--check"], cwd=REPO)
    assert result.returncode == 0


def test_every_module_cog_yaml_runs_is_in_the_build_wheel():
    """run: steps execute before the project is copied in: what they run comes from the local wheel."""
    import zipfile

    cog = yaml.safe_load((REPO / "cog.yaml").read_text())
    wheel = next((REPO / "requirements" / "wheels").glob("cw_build-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for step in cog["build"]["run"]:
        command = step["command"] if isinstance(step, dict) else step
        for module in re.findall(r"python -m (\S+)", command):
            assert f"{module.replace('.', '/')}/__main__.py" in names, f"{module} is not in {wheel.name}"


def test_predict_reference_imports():
    module_name, _, class_name = yaml.safe_load((REPO / "cog.yaml").read_text())["predict"].partition(":")
    module = importlib.import_module(module_name.removesuffix(".py"))
    assert hasattr(getattr(module, class_name), "predict")


def test_openapi_schema_matches_predict_py():
    result = subprocess.run([sys.executable, "scripts/write_openapi_schema.py", "--check"], cwd=REPO)
    assert result.returncode == 0


def test_readme_opens_with_two_commands_and_lists_every_setting():
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    commands = [line for line in first_block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    for name in setting_names():
        assert f"`{name}`" in readme, f"README's settings table lacks {name}"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    test_command = [line for line in re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1).splitlines()
                    if line.strip() and not line.startswith("#")][1]
    assert test_command.strip() in (REPO / ".ci" / "run").read_text()


def test_install_comfyui_is_idempotent_and_records_the_version():
    began = time.monotonic()
    result = subprocess.run([sys.executable, "scripts/install_comfyui.py"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout
    assert time.monotonic() - began < 5
    marker = yaml.safe_load((REPO / "ComfyUI" / "comfyui_install.json").read_text())
    assert marker["comfyui_version"] == "0.3.75"
    assert marker["comfyui_commit"] == "f8b981ae9a5676311624bbafa636a1874db79459"
    assert not (REPO / "ComfyUI" / "extra_model_paths.yaml").exists()
