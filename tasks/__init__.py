"""evalkit's built-in task files and their vendored data (package data of ``evalkit.tasks``; see tasks/data/README.md)."""
