"""The properties, one module per family."""
