"""`python -m tunekae <command>`: one module per command under tunekae/commands/.

A command module defines NAME, HELP, EXAMPLES, add_arguments(parser) and run(args) -> exit code.
UserError anywhere becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
from .cli_support import OneLineErrorParser, run_guarded

COMMANDS = ("spaces", "describe", "match", "train", "search", "confirm", "evaluate", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m tunekae",
                     description="Parameter-matched, equally tuned comparisons of autoencoder families.",
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="Run `python -m tunekae COMMAND --help` for a command's options and examples.\n"
                            "Analysis: python -m tunekae.analysis --help")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    for name in COMMANDS:
        if importlib.util.find_spec(f"{__package__}.commands.{name}") is None:
            continue  # a command module not installed in this checkout
        module = importlib.import_module(f".commands.{name}", __package__)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           epilog="examples:\n" + module.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return run_guarded(f"tunekae {args.command}", lambda: args._run(args))
