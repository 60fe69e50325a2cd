"""Property tests (Hypothesis) of the pure domain: replay, snapshots, redelivery, codec."""
