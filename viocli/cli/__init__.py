"""The click command tree: thin commands that parse, call an operation and render its result."""
