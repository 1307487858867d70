"""Publishing a registration's remaining steps as a Celery chain (the domain's `Publisher`).

State lives in the database, not in the chain (a chain cannot be retried as a whole, and its tail can
be lost after a retry): the chain is rebuilt from the first unfinished step whenever it is published,
relayed or replayed, and a finished step is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from celery import Celery
from celery.canvas import Signature, chain

from config.systems import system as system_named
from registrations.outbox import Publisher


def build_chain(celery: Celery, registration_id: str, systems: Iterable[str]) -> Signature | None:
    """The chain of step tasks for `systems`, ids only, each immutable (no result passing)."""
    signatures = [
        celery.signature(system_named(name).task_name, args=(registration_id,), immutable=True)
        for name in systems
    ]
    if not signatures:
        return None
    return chain(*signatures) if len(signatures) > 1 else signatures[0]


def chain_publisher(celery: Celery) -> Publisher:
    """A publisher that sends the chain on `celery`'s broker, failing fast when it is down."""

    def publish(registration_id: str, systems: Sequence[str]) -> None:
        signature = build_chain(celery, registration_id, systems)
        if signature is not None:
            # retry=False: a down broker must not hold the request; the outbox relay retries.
            signature.apply_async(retry=False)

    return publish
