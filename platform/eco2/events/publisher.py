"""Publishing CloudEvents from a function.

- In the cluster: HTTP POST in binary mode to the broker ingress (`K_SINK`), 2xx (202) expected.
- Locally: AMQP to the local broker's exchange (`RABBITMQ_URL`), encoded as eventing-rabbitmq does.
- Embedded (`eco2 dev` with no RabbitMQ): the in-process broker (`RABBITMQ_URL=memory://`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from eco2.events.message import Message

if TYPE_CHECKING:
    from eco2.core.settings import Settings


class PublishError(RuntimeError):
    pass


class Publisher(Protocol):
    def publish(self, message: Message) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class HttpPublisher:
    """POST to the Knative broker ingress in binary mode."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        import requests

        self.url = url
        self.timeout = timeout
        self.session = requests.Session()

    def publish(self, message: Message) -> None:
        import requests

        headers = message.http_headers()
        try:
            response = self.session.post(self.url, data=message.data, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PublishError(f"broker ingress unreachable: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise PublishError(f"broker ingress answered {response.status_code}")

    def ping(self) -> None:
        """The ingress has no health route: any HTTP answer means it is reachable."""
        import requests

        try:
            self.session.get(self.url, timeout=2)
        except requests.RequestException as exc:
            raise PublishError(f"broker ingress unreachable: {type(exc).__name__}") from exc

    def close(self) -> None:
        self.session.close()


def make_publisher(settings: Settings) -> Publisher:
    if settings.broker_url:
        return HttpPublisher(settings.broker_url)
    url = settings.rabbitmq_url.get()
    if url.startswith("memory://"):
        from eco2.events.memory import MemoryPublisher

        return MemoryPublisher(url)
    from eco2.events.amqp import AmqpPublisher

    return AmqpPublisher(url, settings.broker_name)
