"""What the domain refuses. Services raise these; commands print the message, views show
their own translated text chosen by `code`."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the domain refuses. The message is one line for operators (commands); `code`
    lets views show their own translated text."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class InvalidInput(ServiceError):
    pass


class AlreadyExists(ServiceError):
    pass
