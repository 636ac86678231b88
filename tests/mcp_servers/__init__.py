"""Small MCP servers used by the tests and the tools benchmark."""
