"""What lives in Redis besides the crawl's queues: the connection, the private redis-server, specs, heartbeats."""
