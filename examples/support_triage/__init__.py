"""Support triage: a help desk that routes tickets to queues, improved nightly by dse."""
