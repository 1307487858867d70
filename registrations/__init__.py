"""The domain of Membersync and its persistence: registrations, their steps, identities, the outbox,
dead letters and replay. Imports `config` and `connectors` only; never `app`, `tasks` or Celery."""
