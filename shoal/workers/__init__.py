"""The workers: one session kind per process (http, dynamic, stealth) fetching the jobs of their pool.
They never parse or run callbacks."""
