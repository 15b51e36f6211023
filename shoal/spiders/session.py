"""SessionManager: the sessions a spider declares in ``configure_sessions``, by sid.

In shoal the sessions are specs: workers build the live sessions from them, so the manager only
records which sid maps to which spec, which sid is the default, and which sids are lazy. The spider
checks, when it is built, that each one is a session spec from shoal.fetchers.
"""

from typing import Any


class SessionManager:
    """The sid -> session spec registry a spider fills in ``configure_sessions(manager)``."""

    def __init__(self) -> None:
        self._sessions: dict[str, Any] = {}
        self._default_session_id: str | None = None
        self._lazy_sessions: set[str] = set()

    def add(self, session_id: str, session: Any, *, default: bool = False, lazy: bool = False) -> "SessionManager":
        """Register ``session`` under ``session_id``; the first added (or ``default=True``) is the default."""
        if session_id in self._sessions:
            raise ValueError(f"Session '{session_id}' already registered")
        self._sessions[session_id] = session
        if default or self._default_session_id is None:
            self._default_session_id = session_id
        if lazy:
            self._lazy_sessions.add(session_id)
        return self

    def remove(self, session_id: str) -> None:
        """Remove a session."""
        self.pop(session_id)

    def pop(self, session_id: str) -> Any:
        """Remove a session and return it; the default moves to the first remaining one."""
        if session_id not in self._sessions:
            raise KeyError(f"Session '{session_id}' not found")
        session = self._sessions.pop(session_id)
        self._lazy_sessions.discard(session_id)
        if self._default_session_id == session_id:
            self._default_session_id = next(iter(self._sessions), None)
        return session

    @property
    def default_session_id(self) -> str:
        """The sid used by requests that name none."""
        if self._default_session_id is None:
            raise RuntimeError("No sessions registered")
        return self._default_session_id

    @property
    def session_ids(self) -> list[str]:
        """Every registered sid, in the order added."""
        return list(self._sessions)

    def is_lazy(self, session_id: str) -> bool:
        """Whether the session starts only when a request first uses it."""
        return session_id in self._lazy_sessions

    def get(self, session_id: str) -> Any:
        """The session spec registered under ``session_id``."""
        if session_id not in self._sessions:
            available = ", ".join(self._sessions)
            raise KeyError(f"Session '{session_id}' not found. Available: {available}")
        return self._sessions[session_id]

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)
