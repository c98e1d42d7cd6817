"""What every facelm command shares, set up in one place: `--help` shows each option's default, and
the commands that decode photos take `--max-pixels`.

`Parser` is the class of the top-level parser; argparse makes every sub-command's parser of the
same class, so each command group's module gets the defaults formatter without doing anything.
"""
from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from typing import Any, Iterator

# Commands that decode photos, whose "image too large" error suggests --max-pixels
# (facelm.imageio). `serve` has its own --max-pixels (a per-request limit in its config).
IMAGE_COMMANDS = ("verify", "describe", "analyze", "data qa", "data pairs", "eval mcq",
                  "eval verify", "eval faithfulness", "train verlm", "train vlm", "search")


def _has_default(action: argparse.Action) -> bool:
    # `is`, not `in`: a default of 0 is a default worth showing, and 0 == False
    return bool(action.option_strings) and not (
        action.default is None or action.default is False or action.default is argparse.SUPPRESS
        or isinstance(action, (argparse._HelpAction, argparse._VersionAction)))


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option that has one, unless its help already states it;
    options without a help text get just that."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):
            action = _with_help(action, "(default: %(default)s)")
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if _has_default(action) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _with_help(action: argparse.Action, text: str) -> argparse.Action:
    import copy
    action = copy.copy(action)   # the parser's own action keeps help=None
    action.help = text
    return action


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults; a formatter a command asks for is combined with
    it (e.g. RawDescriptionHelpFormatter for a hand-laid-out description)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fc = kwargs.get("formatter_class", argparse.HelpFormatter)
        if not issubclass(fc, DefaultsFormatter):
            fc = type(f"Defaults{fc.__name__}", (DefaultsFormatter, fc), {})
        kwargs["formatter_class"] = fc
        super().__init__(*args, **kwargs)


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, Any]:
    """"data qa" -> its parser, for every command below `parser` (aliases included)."""
    found: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(subcommands(sub, prefix + name + " "))
    return found


def _pixels(text: str) -> int:
    try:
        n = int(float(text))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a number of pixels: {text!r}") from None
    if n < 4096:
        raise argparse.ArgumentTypeError(f"{n} pixels is too small for any face photo")
    return n


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """--max-pixels on every command of IMAGE_COMMANDS that has none of its own."""
    from .imageio import DEFAULT_MAX_PIXELS
    commands = subcommands(parser)
    for name in IMAGE_COMMANDS:
        p = commands.get(name)
        if p is not None and "--max-pixels" not in p._option_string_actions:
            p.add_argument("--max-pixels", type=_pixels, default=None, metavar="N",
                           help="refuse larger images (JPEGs are decoded reduced to fit) "
                                f"(default: {DEFAULT_MAX_PIXELS:,}, or $FACELM_MAX_PIXELS)")


@contextmanager
def max_pixels_set(args: argparse.Namespace) -> Iterator[None]:
    """The command's --max-pixels as the process-wide default (facelm.imageio reads it, and worker
    processes inherit it) while the command runs; restored afterwards, so a program that calls
    `main` twice does not keep the first limit."""
    from .imageio import MAX_PIXELS_ENV
    value = getattr(args, "max_pixels", None)
    if value is None or getattr(args, "command", None) == "serve":
        yield
        return
    old = os.environ.get(MAX_PIXELS_ENV)
    os.environ[MAX_PIXELS_ENV] = str(value)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(MAX_PIXELS_ENV, None)
        else:
            os.environ[MAX_PIXELS_ENV] = old
