"""The base of errors caused by bad input: the CLI prints them as one message, not a traceback."""


class UserError(ValueError):
    """Bad input (flags, files, ids); the message names the file or flag and what is wrong."""


class ModelLoadError(UserError):
    """A model or checkpoint folder that is missing, incomplete, damaged or does not match what was asked."""
