"""User-facing errors: one line that names the file, flag or value and what would be valid."""


class NeuromemError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, no traceback."""
