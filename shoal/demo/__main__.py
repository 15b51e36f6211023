"""``python -m shoal.demo``: serve the demo shop."""

from shoal.demo.site import main

main()
