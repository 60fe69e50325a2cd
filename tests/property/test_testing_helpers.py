"""``wfdomain.testing`` as users get it: the walk-through in docs/testing.md runs and can fail.

The first Python block of docs/testing.md is executed as written and its tests are run;
then the same helpers are shown to catch a changed definition, so the documented recipe
is a working proof and not just an example.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from tests.unit.test_layers import ROOT, config_with_one_contract, lint_imports
from wfdomain.definition import parse_definition
from wfdomain.testing import check_replay, drive, interleavings

DOC = Path(__file__).parents[2] / "docs" / "testing.md"


def documented_module(tmp_path: Path) -> dict[str, Any]:
    """Import the doc's first Python block as a module (hypothesis reads its source)."""
    first_block = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)[0]
    path = tmp_path / "docs_testing_example.py"
    path.write_text(first_block)
    spec = importlib.util.spec_from_file_location("docs_testing_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


def test_the_documented_properties_pass_on_the_documented_definition(tmp_path: Path) -> None:
    module = documented_module(tmp_path)
    module["test_approval_replays_deterministically"]()
    module["test_redelivered_inputs_change_nothing"]()


def test_the_documented_check_catches_a_changed_condition(tmp_path: Path) -> None:
    approval = documented_module(tmp_path)["APPROVAL"]
    document = approval.model_dump(mode="json", exclude_none=True, by_alias=True)
    document["steps"][1]["filter"] = "event.ok = false"  # accepts the other payload now
    edited = parse_definition(document)

    @settings(max_examples=100, database=None, derandomize=True)
    @given(choices=interleavings())
    def the_edit_keeps_in_flight_runs_working(choices: tuple[int, ...]) -> None:
        recorded = drive(approval, {"order": "o-1"}, choices, settle=False).history
        assert check_replay(edited, recorded).ok

    with pytest.raises(AssertionError):
        the_edit_keeps_in_flight_runs_working()


def test_an_unchanged_definition_passes_the_documented_check(tmp_path: Path) -> None:
    approval = documented_module(tmp_path)["APPROVAL"]
    recorded = drive(approval, {"order": "o-1"}, (1, 3, 0), settle=False).history
    report = check_replay(approval, recorded)
    assert report.ok
    assert report.events_checked == len(recorded)


@pytest.mark.parametrize("bad_import", ["import hypothesis", "from wfdomain.testing import drive"])
def test_the_leaf_contract_catches_an_import_of_the_testing_helpers(
    tmp_path: Path, bad_import: str
) -> None:
    name, config = config_with_one_contract(
        type="forbidden", forbidden_modules=["wfdomain.testing", "hypothesis"])
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    (tmp_path / "src" / "wfdomain" / "_leaf_probe.py").write_text(f"{bad_import}\n")
    status, output = lint_imports(
        tmp_path, "--config", str(tmp_path / "pyproject.toml"), pythonpath=tmp_path / "src"
    )
    assert status != 0, output
    assert any(line.startswith(name) and "BROKEN" in line for line in output.splitlines()), output
    assert "wfdomain._leaf_probe" in output, output
