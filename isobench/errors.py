"""The one exception type that the step scripts turn into a one-line error."""


class IsobenchError(Exception):
    """A user-facing error: its message is one line naming the file and the field."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class CommitFailure(IsobenchError):
    """A problem of one commit's inputs (its extraction, its script): the commit ends as a failed record with
    ``category``, and the run goes on."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category
