"""The OMS state store (SQLite): deployments, nodes, operation history, backup catalog; and the lock."""
