"""Nightly reconciliation: every person in Shopify, Smaregi and HubSpot brought back to the ownership map.

    records.py   compact per-system records (what a comparison needs, nothing more)
    spill.py     the three streams spilled into a temporary SQLite file, read back grouped by address
    sources.py   how each system is read (Shopify export or pages, Smaregi full directory load, HubSpot pages)
    plan.py      pure: one person's records -> outcomes and the writes the ownership map asks for
    writes.py    the writes, through the connectors, each behind the fencing check
    lock.py      one run at a time: a Redis lock with expiry and a fencing token
    report.py    what a run found and did (counts, example vendor ids, API calls, failures)
    run.py       one run: lock, read, plan and write person by person, record the report

docs/reconciliation.md describes the behaviour; `membersync reconcile` and the task
`membersync.reconcile` (tasks/reconcile.py) are the ways in.
"""
