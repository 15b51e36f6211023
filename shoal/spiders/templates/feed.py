"""Twin of ``scrapling.spiders.templates.feed``: XMLFeedSpider and CSVFeedSpider, from where shoal keeps them."""

from shoal.spiders.templates.feeds import CSVFeedSpider, XMLFeedSpider

__all__ = ["CSVFeedSpider", "XMLFeedSpider"]
