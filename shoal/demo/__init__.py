"""The demo shop site, for the README's first crawl, the tests and the benchmark."""

from shoal.demo.site import RunningSite, ShopSite, start_site

__all__ = ["RunningSite", "ShopSite", "start_site"]
