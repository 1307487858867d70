"""Which real services the tests run against (the machine's when configured, else embedded ones)."""

from __future__ import annotations

import os

# The brokers a broker-parametrized test runs on: Redis always, RabbitMQ when CI provides one.
BROKERS = ["redis"] + (["rabbitmq"] if os.environ.get("TEST_RABBITMQ_URL") else [])
