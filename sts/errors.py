"""Errors a user can fix; entry points print them as one line and exit non-zero."""


class STSError(Exception):
    """A problem with the user's input, configuration or files (not a bug)."""


class InputError(STSError):
    """Bad input data: the message names the file, the row and the problem."""

    def __init__(self, path: object, problem: str, row: int | None = None) -> None:
        where = f"{path}" if row is None else f"{path}: row {row}"
        super().__init__(f"{where}: {problem}")
        self.path, self.problem, self.row = path, problem, row

    def __reduce__(self) -> tuple:
        """Rebuilt from its parts when it crosses processes (a Ray worker's error reaching the driver)."""
        return (type(self), (self.path, self.problem, self.row))


class Interrupted(STSError):
    """A run stopped by SIGINT or SIGTERM; the message says how to resume. Exit code 130."""
