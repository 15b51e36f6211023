"""Local mode: one crawl on this machine — a private Redis, the coordinator, a worker per sid.

This is what ``shoal run spider.py`` and ``Spider().start()`` do. The coordinator runs in this
process with the spider object itself; workers are separate processes, exactly as in the service.

The private redis-server and the workers run in sessions of their own (shoal.common.processes), so a
terminal's Ctrl+C reaches only this process. The first Ctrl+C pauses: nothing more is dispatched, what
is in flight is processed, and the run returns a result with ``paused=True`` and every item stored so
far (written to ``output`` too). A second Ctrl+C, or SIGTERM, stops at once: what is in flight is left
unprocessed, and the result is the same. With a crawl directory (``Spider(crawldir=...)``,
``shoal run --crawldir``) the crawl's state is kept there (the private redis-server's append-only file
and the crawl's id), and running again resumes it, in-flight requests included; once the crawl
completes the directory's state is removed.
"""
