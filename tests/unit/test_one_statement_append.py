"""The Postgres one-statement append writes every column the transaction path writes."""

from __future__ import annotations

from wfadapters.sql._one_statement import SINGLE_APPEND, SINGLE_CREATE, single_append_params
from wfadapters.sql.event_store import _SUMMARY_COLUMNS
from wfadapters.sql.schema import wf_runs


def test_it_sets_every_run_column_the_transaction_path_sets() -> None:
    # A column added to wf_runs and not here would keep its old value on the common path.
    params = single_append_params([], {c.name: None for c in wf_runs.c}, 1, [], None)
    updated = {name[2:] for name in params if name.startswith("v_")}
    assert updated == set(_SUMMARY_COLUMNS)
    assert all(f"{name} = CAST(:v_{name} AS" in SINGLE_APPEND.text for name in updated)


def test_a_new_run_gets_every_run_column() -> None:
    inserted = {c.name for c in wf_runs.c if f":v_{c.name} AS" in SINGLE_CREATE.text}
    assert inserted | {"tenant", "run_id", "fencing_token"} == {c.name for c in wf_runs.c}
    assert "ON CONFLICT (tenant, run_id) DO NOTHING" in SINGLE_CREATE.text
