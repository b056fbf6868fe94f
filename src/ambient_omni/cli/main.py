"""Entry point of the ``ambient`` command: discovers subcommand modules in this package."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

import ambient_omni
import ambient_omni.cli as cli_pkg
from ambient_omni.errors import AmbientError

_NOT_COMMANDS = {"main", "common"}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per discovered command module."""
    parser = argparse.ArgumentParser(
        prog="ambient",
        description="Ambient Diffusion Omni: train diffusion models from clean, low-quality "
        "and out-of-distribution images. Run `ambient SUBCOMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"ambient_omni {ambient_omni.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in _NOT_COMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli_pkg.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def os_error_message(err: OSError) -> str:
    """``PATH: reason`` for an operating-system error (``[Errno 28] ...`` spelled out), its text otherwise;
    a failed rename names its destination (the user's path, not the temporary file of an atomic write)."""
    target = err.filename2 if err.filename2 is not None else err.filename
    return str(err) if target is None else f"{target}: {err.strerror or err}"


def _set_threads(command: str) -> None:
    """Give torch the threads :func:`~ambient_omni.device.choose_threads` picks; say so when it is fewer than
    the cores because the machine is busy (commands that set their own, like ``--threads``, override it)."""
    import torch

    from ambient_omni.device import choose_threads

    threads, reason = choose_threads()
    torch.set_num_threads(threads)
    if "busy" in reason and threads < (os.cpu_count() or 1):
        print(f"ambient {command}: {reason}: using {threads} torch thread(s) (AMBIENT_THREADS=N chooses)",
              file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; user errors exit with code 2 and one message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        from ambient_omni.host_memory import tune_malloc

        tune_malloc()
        _set_threads(args.command)
        return int(args.func(args) or 0)
    except (AmbientError, FileNotFoundError, ValueError) as err:
        print(f"ambient {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file where a folder belongs, a full disk, no permission...: one line, no traceback
        print(f"ambient {args.command}: error: {os_error_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ambient {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
