"""Errors a user can cause: the CLI turns these into one line and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (an unknown name, a missing file, a bad URL, ...)."""
