"""The click CLI: parses arguments, calls the API, renders results."""
