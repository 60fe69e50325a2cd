"""Tables of the SQL event store (events, runs, snapshots, definitions, ledger, audit)."""
