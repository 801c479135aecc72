"""SQL storage: the tables (models), the engine and sessions (db), and the queries (per table)."""
