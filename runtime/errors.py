"""The one exception type for user errors, shared by every layer (it lives at the bottom)."""


class TvmDeployError(Exception):
    """A problem with the user's input or environment, shown as one line `error: ...`.

    Bugs are not TvmDeployError: they keep their traceback.
    """

    def __init__(self, message: str):
        # One line: the CLI prints it after "error: " and nothing else.
        super().__init__(" ".join(str(message).split()))
