"""The pipeline's steps as domain logic: what each system is asked, with no database at hand.

A step gets a `Work` snapshot (the registrant and what is known of the person), calls its vendor
through the interfaces of `connectors.interfaces`, and returns an `Outcome`: the external id and
what it learned of the person. Reading the snapshot and recording the outcome are short
transactions of `registrations.sync`; the Celery task around them lives in `tasks`.
"""

from registrations.steps.base import Known, Outcome, Registrant, Step, Work

__all__ = ["Known", "Outcome", "Registrant", "Step", "Work"]
