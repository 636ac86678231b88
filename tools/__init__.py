"""The MCP tool host (catalog, DAG executor, built-in tool servers) lives here."""
