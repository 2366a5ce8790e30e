"""Private PostgreSQL, Redis and RabbitMQ servers that a test owns and may stop and restart.

The shared servers on the standard ports serve every other test (and other people's work); a
test that takes a backend down uses one of these instead: same Debian binaries, its own port
and data directory under the test's tmp path, bound to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, up: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            listening = s.connect_ex(("127.0.0.1", port)) == 0
        if listening == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} within {timeout} s")


@dataclass
class PrivateServer:
    """One server process on its own port; `stop()` then `start()` is a restart."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    stop_signal: int = field(default=signal.SIGTERM, init=False)

    def __post_init__(self) -> None:
        """A hook for subclasses (the dataclass __init__ calls it only when the base defines it)."""

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time set-up of the data directory."""

    def start(self, timeout: float = 60) -> None:
        argv, env = self.command()
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            argv,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.workdir if not isinstance(self, PrivatePostgres) else "/",
            **self.popen_options(),
        )
        wait_port(self.port, True, timeout)
        self.ready(timeout)

    def popen_options(self) -> dict[str, str]:
        return {}

    def ready(self, timeout: float) -> None:
        """Beyond the port listening (RabbitMQ accepts TCP before AMQP is up)."""

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None
        wait_port(self.port, False, 10)

    def remove(self) -> None:
        """Stop for good and delete what it kept."""
        self.stop()


class PrivateRedis(PrivateServer):
    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        return [*argv, "--dir", str(self.workdir)], {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class PrivatePostgres(PrivateServer):
    """initdb as the postgres user (initdb refuses root), a superuser `root`, trust on 127.0.0.1."""

    def __post_init__(self) -> None:
        self.stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    def _bin(self, name: str) -> str:
        versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
        return str(versions[-1] / "bin" / name)

    def _as_postgres(self) -> dict[str, str]:
        return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    @property
    def data(self) -> Path:
        return self.home / "pgdata"

    def prepare(self) -> None:
        import tempfile

        # a directory of its own that the postgres user can reach (a test's tmp path is root's only)
        self.home = Path(tempfile.mkdtemp(prefix="eco2-private-pg-"))
        self.home.chmod(0o755)
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")
            shutil.chown(self.data, "postgres")
        initdb = [self._bin("initdb"), "-D", str(self.data), "-U", "root", "--auth=trust", "-E", "UTF8"]
        subprocess.run(initdb, check=True, capture_output=True, cwd=self.home, **self._as_postgres())  # type: ignore[call-overload]

    def command(self) -> tuple[list[str], dict[str, str]]:
        options = ["-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.home), "-c", "fsync=off"]
        return [self._bin("postgres"), "-D", str(self.data), *options], {}

    def popen_options(self) -> dict[str, str]:
        return self._as_postgres()

    def ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run([self._bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("private PostgreSQL did not become ready")

    @property
    def url(self) -> str:
        return f"postgresql://root@127.0.0.1:{self.port}/postgres"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


class PrivateRabbitMQ(PrivateServer):
    """A second RabbitMQ node on its own AMQP and distribution ports, no plugins."""

    def prepare(self) -> None:
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")

    @property
    def node(self) -> str:
        return f"eco2test{self.port}@localhost"

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 10000),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
            "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid"),
        }
        # the server itself, not Debian's wrapper (which switches to the rabbitmq user)
        direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        env["RABBITMQ_FEATURE_FLAGS_FILE"] = str(self.workdir / "feature_flags")
        return [str(direct) if direct.exists() else "rabbitmq-server"], env

    def ready(self, timeout: float) -> None:
        import pika

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return
            except Exception:
                time.sleep(0.2)
        raise TimeoutError("private RabbitMQ did not accept AMQP")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"


class PrivateS3(PrivateServer):
    """moto's S3-compatible server; it keeps nothing, so each start creates the bucket again."""

    bucket = "eco2-images"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)], {}

    def ready(self, timeout: float) -> None:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        client.create_bucket(Bucket=self.bucket)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start(kind: type[PrivateServer], workdir: Path) -> PrivateServer:
    port = free_port()
    if kind is PrivateRabbitMQ:
        while port + 10000 > 65535:
            port = free_port()
    server = kind(kind.__name__.lower(), port, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    server.prepare()
    server.start()
    return server
