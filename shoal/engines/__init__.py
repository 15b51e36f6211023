"""Twin of the ``scrapling.engines`` path Scrapling documents for its Response (``engines.toolbelt.custom``)."""
