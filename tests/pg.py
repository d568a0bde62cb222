"""A throwaway PostgreSQL for the tests, started from the local server binaries."""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them with "
    "`apt-get install -y postgresql` (Debian), or point SEENBY_TEST_DATABASE_URL at a server."
)


def find_bindir() -> Path:
    candidates: list[str] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if directory and (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    raise RuntimeError(INSTALL_HINT)


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range: a port the kernel hands out (bind to 0)
    can be taken, before our server binds it or while it restarts, as the local end of some
    outgoing connection, and the server then fails with 'address already in use'."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


class ThrowawayPostgres:
    """initdb + pg_ctl in a temporary folder; as root, the server runs as the `postgres` user."""

    def __init__(self, *, durable: bool = False, options: str = "") -> None:
        self.durable = durable  # fsync and synchronous commit on, as in production (benchmarks)
        self.options = options  # more `-c name=value` server settings
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="seenby-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> str:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.resume()
        return self.url("postgres")

    def start_standby_of(self, primary: ThrowawayPostgres) -> str:
        """A hot standby of `primary`: its base backup (`pg_basebackup -R`), then streaming from it."""
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(primary.port),
                  "-U", primary.user, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
        self.resume()
        return self.url("postgres")

    @property
    def log(self) -> str:
        return (self.root / "log").read_text(errors="replace")

    def crash(self) -> None:
        """Stop the server without a shutdown checkpoint (`-m immediate`), keeping its data: the
        next start recovers from the WAL. (The OS cache survives, unlike in a power cut: this
        tests what synchronous commit promises, not what fsync does.)"""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start the server on its data, after `start` made it or `crash` stopped it (crash recovery)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if self.durable:
            options += " -c shared_buffers=512MB -c max_wal_size=4GB"
        else:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += f" {self.options}" if self.options else ""
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")

    def url(self, database: str, user: str | None = None) -> str:
        return f"postgresql+asyncpg://{user or self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():  # not after a start that failed early
                self.crash()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
