"""Readiness tells the truth, per backend kind: `/health/readiness` answers 503 naming the client
while its server is down and 200 again once it is back, without restarting the function. Each
backend here is a private server of the test's own (tests/support/private_servers.py), so the
shared ones keep serving everyone else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eco2.serving.testing import FunctionClient
from tests.support.private_servers import (
    PrivatePostgres,
    PrivateRabbitMQ,
    PrivateRedis,
    PrivateS3,
    PrivateServer,
    free_port,
    start,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "readiness-secret-0123456789-0123456789-0123456789"


def readiness(client: FunctionClient) -> tuple[int, dict[str, str]]:
    answer = client.get("/health/readiness")
    return answer.status_code, answer.json["checks"]


def wait_ready(client: FunctionClient, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if readiness(client)[0] == 200:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not ready {timeout} s after the server came back: {readiness(client)}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PrivateServer]]:
    made: dict[str, PrivateServer] = {}
    try:
        for use, kind in (
            ("db", PrivatePostgres),
            ("redis", PrivateRedis),
            ("events", PrivateRabbitMQ),
            ("s3", PrivateS3),
        ):
            made[use] = start(kind, tmp_path_factory.mktemp(use))
        from eco2.tooling.migrate import upgrade

        upgrade(made["db"].url)
        yield made
    finally:
        for server in made.values():
            server.remove()


@pytest.mark.parametrize(
    ("function", "use"),
    [("users", "db"), ("users", "redis"), ("scan", "events"), ("images", "s3")],
)
def test_readiness_is_503_while_a_backend_is_down_and_200_once_it_is_back(
    function: str, use: str, servers: dict[str, PrivateServer]
) -> None:
    env = {
        "ECO2_ENV": "test",
        "JWT_SECRET": SECRET,
        "DATABASE_URL": servers["db"].url,
        "REDIS_URL": servers["redis"].url,
        "RABBITMQ_URL": servers["events"].url,
        "ECO2_BROKER": "readiness",
        "S3_ENDPOINT_URL": servers["s3"].url,
        "S3_BUCKET": PrivateS3.bucket,
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_REGION": "us-east-1",
        "LOG_LEVEL": "ERROR",
    }
    with FunctionClient(function, env, root=ROOT) as client:
        status, checks = readiness(client)
        assert status == 200 and checks[use] == "ok", checks
        servers[use].stop()
        try:
            status, checks = readiness(client)
            assert status == 503 and checks[use].startswith("error"), checks
            assert all(v == "ok" for k, v in checks.items() if k != use), checks  # only the one that is down
        finally:
            servers[use].start()
        took = wait_ready(client, 15)
        assert took < 15


@pytest.mark.parametrize("function", ["scan-worker", "chat-worker"])
def test_the_model_functions_are_ready_without_reaching_the_model_provider(
    function: str, function_client: Callable[..., FunctionClient]
) -> None:
    """The model provider is a third party's service, not one of the project's backends: readiness
    builds its client and stops there (`eco2.serving.clients.Clients._ping`). Its address here is
    a port nothing listens on, so a readiness check that reached it would answer 503."""
    nothing_there = free_port()  # bound and released at once
    client = function_client(function, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"http://127.0.0.1:{nothing_there}/v1")
    for _ in range(3):
        status, checks = readiness(client)
        assert status == 200 and checks["openai"] == "ok", checks
