"""Errors the command line reports as one line (exit status 2)."""


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""
