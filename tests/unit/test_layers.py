"""STYLE rule 1: the import-linter contracts in pyproject.toml hold, and they can fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML here")


def config_with_one_contract(**match: Any) -> tuple[str, str]:
    """The import-linter config of pyproject.toml cut down to the one contract matching ``match``.

    Returns the contract's name and the config as TOML. Checking one contract on its own keeps
    this test about that contract, whatever state the other contracts are in.
    """
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    linter = dict(config["tool"]["importlinter"])
    contracts = linter.pop("contracts")
    chosen = [c for c in contracts if all(c.get(k) == v for k, v in match.items())]
    assert len(chosen) == 1, f"expected one contract matching {match}, found {chosen}"
    lines = ["[tool.importlinter]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in linter.items()]
    lines.append("[[tool.importlinter.contracts]]")
    lines += [f"{key} = {toml_value(value)}" for key, value in chosen[0].items()]
    return str(chosen[0]["name"]), "\n".join(lines) + "\n"


def test_import_contracts_hold() -> None:
    status, output = lint_imports(ROOT)
    assert status == 0, output


@pytest.mark.parametrize(
    ("bad_import", "contract"),
    [
        ("import os", {"type": "forbidden", "source_modules": ["wfdomain"]}),
        ("import wfadapters", {"type": "layers"}),
    ],
    ids=["forbidden-os", "layers-upward"],
)
def test_import_contracts_catch_a_violation(
    tmp_path: Path, bad_import: str, contract: dict[str, Any]
) -> None:
    name, config = config_with_one_contract(**contract)
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    (tmp_path / "src" / "wfdomain" / "_layer_probe.py").write_text(f"{bad_import}\n")

    status, output = lint_imports(
        tmp_path, "--config", str(tmp_path / "pyproject.toml"), pythonpath=tmp_path / "src"
    )

    assert status != 0, output
    broken = [line for line in output.splitlines() if line.rstrip().endswith("BROKEN")]
    assert any(name in line for line in broken), output
    assert "wfdomain._layer_probe" in output, output
