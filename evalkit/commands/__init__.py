"""CLI commands, one module each: ``register(subparsers)`` adds the parser, ``run(args)`` does the work.

A new command is a new module plus one line in ``evalkit.cli.COMMANDS``.
"""
