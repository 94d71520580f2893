"""Files: the one atomic write (readers of hostile input live in ``evalkit/data.py`` for now)."""
