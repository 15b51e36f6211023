"""What every side shares and what travels through Redis: messages, requests, responses, key names,
session specs. No I/O."""
