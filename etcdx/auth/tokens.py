"""What a request carries once its token is checked, and the contract every token provider meets.

AuthInfo is who made a request and under which auth revision. The API layer gets it from the
token (or the client certificate's CN), stamps it on the proposal, and apply checks the request
against the auth store with it: a request stamped with a revision older than the store's is refused
with "revision of auth store is old", so a permission revoked while the request was in flight is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """The user a request acts as, and the auth revision it was authorised under."""

    username: str
    revision: int


class TokenProvider(Protocol):
    """A token scheme (simple or jwt). Time is a number of seconds passed in by the caller."""

    def enable(self) -> None:
        """Auth was enabled: start accepting tokens."""

    def disable(self) -> None:
        """Auth was disabled: forget every token handed out."""

    def info(self, token: str, now: float, current_revision: int) -> AuthInfo:
        """The AuthInfo a token stands for; raises ERR_INVALID_AUTH_TOKEN if it stands for none."""

    def assign(self, username: str, revision: int, now: float, *, simple_prefix: str = "", index: int = 0) -> str:
        """A new token for ``username`` (called in apply of a committed Authenticate, on every member)."""

    def invalidate_user(self, username: str) -> None:
        """The user was deleted or changed password: its tokens stop working."""
