"""Chromium profiles (user data directories) that a browser worker launches with.

A session's ``user_data_dir`` is shared by every worker of its sid, possibly on several machines, and
Chromium cannot open one profile twice. Each worker therefore holds its own profile under it,
``<user_data_dir>/<sid>/<n>``: the lowest ``n`` that no other process holds. A lock file beside the
profile says who holds it; the lock goes with its process, however it ends, so a restarted worker
takes the profile back (and the cookies in it). A session with ``dns_over_https`` and no
``user_data_dir`` gets a temporary profile, because Chromium reads its secure DNS settings from the
profile's ``Local State`` file.
"""

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

#: Where Chromium's secure DNS asks, unless $SHOAL_DOH_TEMPLATES names other DoH URI templates
#: (space-separated): the resolver Scrapling's dns_over_https uses.
DEFAULT_DOH_TEMPLATES = "https://cloudflare-dns.com/dns-query"
DOH_ENV = "SHOAL_DOH_TEMPLATES"


class Profile:
    """A profile directory this process holds until ``release``."""

    def __init__(self, path: Path, lock: int | None = None, temporary: bool = False) -> None:
        self.path = path
        self._lock = lock
        self._temporary = temporary

    @classmethod
    def claim(cls, base: Path) -> "Profile":
        """The first profile ``base/<n>`` that no other process holds, created if new."""
        base.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:
            lock = os.open(base / f"{n}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                n += 1
                continue
            path = base / str(n)
            path.mkdir(exist_ok=True)
            return cls(path, lock)

    @classmethod
    def temporary(cls) -> "Profile":
        """A new empty profile, deleted on ``release``."""
        return cls(Path(tempfile.mkdtemp(prefix="shoal-profile-")), temporary=True)

    def use_secure_dns(self, templates: str | None = None) -> None:
        """Have Chromium resolve every name through DNS-over-HTTPS (``templates``, else $SHOAL_DOH_TEMPLATES,
        else Cloudflare's), never the system resolver: its "secure" mode, set in the profile's Local State."""
        local_state = self.path / "Local State"
        try:
            state = json.loads(local_state.read_text())
        except (FileNotFoundError, ValueError):  # a new profile, or one Chromium never finished writing
            state = {}
        doh = templates or os.environ.get(DOH_ENV) or DEFAULT_DOH_TEMPLATES
        state["dns_over_https"] = {"mode": "secure", "templates": doh}
        local_state.write_text(json.dumps(state))

    def release(self) -> None:
        """Let other processes have the profile (a temporary one is deleted)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        if self._temporary:
            shutil.rmtree(self.path, ignore_errors=True)
