"""Command line: ``ambient SUBCOMMAND``. Each module here is a thin layer over the library.

A subcommand module defines ``register(subparsers) -> None``, which adds its parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
Modules are discovered automatically; heavy imports belong inside ``func``, not at module level,
so that ``ambient --help`` stays fast.
"""
