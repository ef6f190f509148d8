"""The SQLite backend: SQL only, one module per resource."""
