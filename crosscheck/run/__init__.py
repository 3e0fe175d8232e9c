"""The run engine: runner, session, pairwise, findings, records, shards, profiles."""
