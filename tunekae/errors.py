"""Errors a user can cause. The CLI prints their message as one line and exits with status 2
(no traceback); everything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Bad input the user can fix: unknown name, missing dataset, bad range, infeasible budget."""
