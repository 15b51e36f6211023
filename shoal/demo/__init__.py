"""A demo shop site served on 127.0.0.1, for the README's first crawl, the tests and the benchmark."""

from shoal.demo.site import RunningSite, ShopSite, start_site

__all__ = ["RunningSite", "ShopSite", "start_site"]
