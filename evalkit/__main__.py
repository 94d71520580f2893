from evalkit.cli import entrypoint

entrypoint()
