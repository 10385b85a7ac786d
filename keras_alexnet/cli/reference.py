"""The command line's reference page (``docs/cli.md``): every command's ``--help``, made from the parser.

``python tools/cli_reference.py`` writes it; a test fails when the page and the parser differ, so the
documentation site shows every flag, its meaning and its default as ``keras-alexnet CMD --help`` does.
"""

from __future__ import annotations

import contextlib
import io

from keras_alexnet._utils.runtime import environment

WIDTH = 76  # the help's line width: the site shows it without scrolling, whatever the terminal that makes it


def _help(parser, argv):
    """What ``keras-alexnet ARGV --help`` prints."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
        parser.parse_args([*argv, "--help"])
    return printed.getvalue().rstrip()


def markdown():
    """The page: an introduction, then one section per command with its ``--help``."""
    from keras_alexnet.cli import SUBCOMMANDS, build_parser

    with environment(COLUMNS=str(WIDTH)):  # argparse sizes its help from the terminal
        parser = build_parser()
        sections = [
            "# Command line",
            "",
            "<!-- Made by `python tools/cli_reference.py` from the parser; a test fails when it is stale. -->",
            "",
            "Every command and flag, as `keras-alexnet COMMAND --help` prints them: the meaning and the",
            "default of each flag come from one field of `keras_alexnet/options.py` (or the command's own",
            "flags), so this page, `--help` and the Python API cannot disagree. The pages by topic explain",
            "when to use them: [training](training.md), [recipes and compare](recipes.md),",
            "[confidence](confidence.md), [explain and report](explain.md), [more than one machine](cluster.md).",
            "",
            "```text",
            _help(parser, []),
            "```",
        ]
        for name in (module.NAME for module in SUBCOMMANDS):
            sections += ["", f"## {name}", "", "```text", _help(parser, [name]), "```"]
    return "\n".join(sections) + "\n"
