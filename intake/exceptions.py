"""The intake's exceptions: bad input or a request the state does not allow; nothing was changed."""

from honua import errors


class IntakeError(errors.HonuaError, ValueError):
    """Bad input or a request the conversation's state does not allow; nothing was changed."""


class InvalidInput(IntakeError):
    pass


class ConversationClosed(IntakeError):
    """A message (or an end) for a conversation that is no longer active."""


class ManifestStateError(IntakeError):
    """A manifest transition its status does not allow (approve a non-draft, submit an unapproved one)."""


class ManifestInvalid(IntakeError):
    """The manifest does not match the schema; ``errors`` lists every reason."""

    def __init__(self, errors: list[str], *, schema_version: int = 1):
        self.errors = errors
        super().__init__(f"manifest does not match schema v{schema_version}: " + "; ".join(errors))
