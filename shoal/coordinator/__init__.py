"""The coordinator: runs spiders' callbacks and keeps each crawl's frontier, politeness, items and stats
in Redis. It never fetches."""
