"""wfapps: settings from the environment, the composition root, and the CLI's contract."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wfapps import Settings, SettingsError, open_runtime
from wfapps.cli import app
from wfdomain import ActionRegistry, UnsupportedOperationError, parse_definition
from wfdomain.errors import DefinitionError, InputValidationError
from wfdomain.runtime import RuntimeSettings
from wfdomain.schema import validate_against_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_settings_default_to_the_embedded_sqlite_engine() -> None:
    settings = Settings.from_env({})
    assert settings.engine_url == "sqlite:///wf.db"
    assert (settings.backend, settings.queue, settings.tenant) == ("sqlite", "default", "default")


def test_settings_read_queue_and_correlation_paths() -> None:
    settings = Settings.from_env({
        "WF_ENGINE_URL": "memory://?queue=billing",
        "WF_CORRELATION_PATHS": json.dumps({"paid": ["order.id"], "*": ["ref"]}),
        "WF_STUCK_AFTER_S": "30",
    })
    assert settings.queue == "billing"
    assert settings.correlation_paths == {"paid": ("order.id",), "*": ("ref",)}
    assert settings.stuck_after_s == 30.0


@pytest.mark.parametrize(("env", "variable"), [
    ({"WF_ENGINE_URL": "mysql://x"}, "WF_ENGINE_URL"),
    ({"WF_SNAPSHOT_EVERY": "often"}, "WF_SNAPSHOT_EVERY"),
    ({"WF_SNAPSHOT_EVERY": "-1"}, "WF_SNAPSHOT_EVERY"),
    ({"WF_CORRELATION_PATHS": "{nope"}, "WF_CORRELATION_PATHS"),
    ({"WF_CORRELATION_PATHS": '{"paid": "order.id"}'}, "WF_CORRELATION_PATHS"),
    ({"WF_STUCK_AFTER_S": "0"}, "WF_STUCK_AFTER_S"),
])
def test_bad_settings_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.code == "SETTINGS_INVALID"
    assert variable in str(info.value)


async def test_open_runtime_refuses_temporal_which_has_no_local_runtime() -> None:
    with pytest.raises(UnsupportedOperationError) as info:
        async with open_runtime(Settings.from_url("temporal://127.0.0.1:7233/default"),
                               ActionRegistry()):
            pass
    assert info.value.code == "UNSUPPORTED"


async def test_open_engine_takes_engine_and_queue_from_the_url_only() -> None:
    options = RuntimeSettings(engine="temporal", queue="elsewhere",
                              stuck_after=timedelta(seconds=7))
    settings = Settings.from_url("memory://?queue=billing")
    async with open_runtime(settings, ActionRegistry(), options=options) as runtime:
        assert (runtime.settings.engine, runtime.settings.queue) == ("memory", "billing")
        assert runtime.settings.stuck_after == timedelta(seconds=7)


def test_schema_patterns_run_in_linear_time() -> None:
    schema = {"properties": {"a": {"pattern": "^(a+)+$"}}}
    with pytest.raises(InputValidationError):
        validate_against_schema({"a": "a" * 5000 + "!"}, schema, what="input")


def test_invalid_schema_pattern_is_refused_when_the_definition_loads() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition({
            "id": "x", "version": 1, "steps": [
                {"type": "human_task", "task": "t", "outcomes": ["ok"],
                 "form": {"properties": {"n": {"pattern": "(a)\\1"}}}},
            ],
        })
    assert info.value.path == "steps[0].form.properties.n.pattern"


def test_cli_returns_4_at_once_when_only_a_person_can_move_the_run() -> None:
    result = CliRunner().invoke(app, ["run", str(EXAMPLES / "ticket_approval"),
                                      "--timeout", "30"])
    assert result.exit_code == 4, result.output
    assert "waiting for a person" in result.output


def test_cli_usage_error_is_2_and_engine_error_is_3() -> None:
    bad_json = CliRunner().invoke(app, ["run", str(EXAMPLES / "order_fulfilment"),
                                        "--input", "{not json"])
    assert bad_json.exit_code == 2
    # No Temporal frontend listens there: one line with the code, exit 3.
    unreachable = CliRunner().invoke(app, ["stuck", "--engine", "temporal://127.0.0.1:1/x"])
    assert unreachable.exit_code == 3
    assert unreachable.output.startswith("error [STORAGE_UNAVAILABLE]")


def test_cli_exports_a_waiting_run_and_imports_it_into_another_database(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    runner = CliRunner()
    started = runner.invoke(app, ["run", str(EXAMPLES / "ticket_approval"), "--engine", source,
                                  "--json"])
    assert started.exit_code == 4, started.output
    run_id = json.loads(started.output)["run_id"]
    archive = tmp_path / "run.json"
    exported = runner.invoke(app, ["export", run_id, "--engine", source, "-o", str(archive)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(archive.read_text())["run"]["run_id"] == run_id
    imported = runner.invoke(app, ["import", str(archive), "--engine", target,
                                   "--actions", str(EXAMPLES / "ticket_approval")])
    assert imported.exit_code == 4, imported.output
    assert f"run {run_id} is waiting" in imported.output
    again = runner.invoke(app, ["import", str(archive), "--engine", target])
    assert again.exit_code == 3
    assert "RUN_ALREADY_EXISTS" in again.output


def test_the_embedded_default_needs_only_the_sql_extra(tmp_path: Path) -> None:
    # The README's main job installs only the `sql` extra: `wf run` on SQLite must not
    # import another backend's or app's packages (they load when their engine is used).
    blocked = ("redis", "fastapi", "starlette", "uvicorn", "prometheus_client", "temporalio",
               "opentelemetry", "asyncpg", "playwright")
    script = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from wfapps.cli import main\n"
        f"sys.argv = ['wf', 'run', {str(EXAMPLES / 'order_fulfilment')!r}, "
        f"'--engine', 'sqlite:///{tmp_path / 'wf.db'}']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "status: completed" in done.stdout
