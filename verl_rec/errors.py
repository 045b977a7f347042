"""The one error of a missing or malformed input file, shared by every reader (builders, task
records, evaluation inputs), so that a command line can report it in one place."""


class InputError(ValueError):
    """A missing or malformed input file; the message says which file, which column, what to do."""
