"""Built-in agents and tools, registered through the same hooks a third-party plugin uses."""
