"""The command line: the only layer that parses argv or prints."""
