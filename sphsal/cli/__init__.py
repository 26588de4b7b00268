"""The ``sphsal`` command: a thin layer over the library.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds an ``argparse`` parser whose ``func`` default takes the
parsed arguments and returns an exit code. Modules load only when the command line needs them.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
import threading
import warnings

from sphsal._version import __version__

# Sub-command name -> module in this package (modules are imported only when listed here).
COMMANDS: dict[str, str] = {
    "project": "project",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "models": "models",
    "demo": "demo",
    "synth": "synth",
    "aem": "aem",
    "bench": "bench",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only`` set, import just that sub-command's module."""
    parser = argparse.ArgumentParser(
        prog="sphsal",
        description="Saliency prediction on 360-degree video with ambisonic audio.",
    )
    parser.add_argument("--version", action="version", version=f"sphsal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is None or only == name:
            importlib.import_module(f"sphsal.cli.{module}").register(sub)
    parser.set_defaults(command_parsers=sub.choices)
    return parser


#: Errors that report a user's mistake (bad option, missing or unwritable path): ``main`` prints them as
#: one line and returns 2. Anything else is a bug and keeps its traceback. ImportError: an optional
#: dependency missing (its message says what to install); FloatingPointError: training diverged (its
#: message gives the step and what to change).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, ImportError, FloatingPointError)

#: What continues an interrupted command, for the commands that can be continued.
INTERRUPT_HINTS: dict[str, str] = {
    "train": "`sphsal train --resume` continues the run from its last checkpoint",
    "predict": "running it again without --overwrite skips the videos already finished",
}


def describe_error(err: Exception) -> str:
    """One line for a user error: the message, and for an ``OSError`` the path(s) it concerns."""
    if isinstance(err, OSError) and err.filename is not None:
        paths = repr(os.fspath(err.filename))
        if err.filename2 is not None:
            paths += f" -> {os.fspath(err.filename2)!r}"
        return f"{err.strerror or type(err).__name__}: {paths}"
    return str(err)


def main(argv: list[str] | None = None) -> int:
    """Run the ``sphsal`` command line ``argv`` (default ``sys.argv[1:]``); returns the exit code (2 for a
    user error, printed as one ``sphsal COMMAND: error: ...`` line; 130 for Ctrl-C, one line too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the sub-command's parser, with its usage (argparse's top-level one shows none)
        args.command_parsers.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if not argv else 2
    terminate = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if terminate else None
    try:
        with warnings.catch_warnings():  # a warning is one line naming the command, not a source line
            warnings.showwarning = functools.partial(_show_warning, args.command)
            return int(args.func(args) or 0)
    except USER_ERRORS as err:
        print(f"sphsal {args.command}: error: {describe_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = INTERRUPT_HINTS.get(args.command)
        print(f"sphsal {args.command}: interrupted (every file written is complete"
              f"{'; ' + hint if hint else ''})", file=sys.stderr)
        return 130
    finally:
        if terminate:
            signal.signal(signal.SIGTERM, previous)


def _show_warning(command: str, message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of a command: ``sphsal COMMAND: warning: ...`` on stderr."""
    print(f"sphsal {command}: warning: {message}", file=sys.stderr if file is None else file)


def _exit_on_sigterm(signum, frame):
    """SIGTERM (``kill``, ``timeout``, a job scheduler) as ``SystemExit(143)``: the clean-up of the command
    runs (temporary files and staging folders are removed) instead of the process vanishing."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
