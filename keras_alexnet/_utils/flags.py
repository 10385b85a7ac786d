"""Command-line flags made from the options dataclasses: each option is written once, as a field.

A field says its flag in its metadata (``flag(...)``): the help, the choices, how text becomes a
value. ``add_flags`` adds those flags to an ``argparse`` parser with ``default=SUPPRESS``, so the
parsed namespace holds only what was typed (``--resume`` needs to know), and the help shows the
field's default. ``typed_options`` turns a namespace back into field values. Nothing here imports
TensorFlow: ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses

from keras_alexnet._utils.checks import is_count


def argument_type(convert, accept, describe):
    """An argparse type: ``convert(text)``, refused with "is not ``describe``" unless ``accept(value)``."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {describe}")
        return value

    return parse


positive_int = argument_type(int, is_count, "a whole number of at least 1")
seed_number = argument_type(int, lambda value: 0 <= value < 2**32, f"a seed: give a whole number from 0 to {2**32 - 1}")
positive_number = argument_type(float, lambda value: 0 < value < float("inf"), "a positive number")
non_negative_number = argument_type(float, lambda value: 0 <= value < float("inf"), "a number of 0 or more")
fraction = argument_type(float, lambda value: 0 <= value <= 1, "a fraction from 0 to 1")
below_one = argument_type(float, lambda value: 0 <= value < 1, "a number from 0 up to (not including) 1")


class _NotASwitch:
    """The ``Flag.value`` of a flag that takes a value."""


@dataclasses.dataclass(frozen=True)
class Flag:
    """How a field appears on the command line.

    ``name``: the flag (default ``--`` and the field's name with dashes). ``value``: the field's
    value when a switch is given (``store_true``-like flags: True; ``--no-report``: False).
    ``choices`` may be a callable (recipes registered later). ``parse``: text to value.
    """

    help: str
    name: str | None = None
    aliases: tuple = ()
    choices: object = None
    parse: object = None
    metavar: str | None = None
    value: object = _NotASwitch  # a switch: the value it sets
    boolean: bool = False  # --flag / --no-flag (argparse.BooleanOptionalAction)
    show_default: bool = True


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the rest of the package needs to know about an option, kept on its field.

    ``resumable``: a resumed run may change it (it changes nothing about the epochs already done).
    ``commands``: the commands besides ``train`` (which takes every option) whose flags set it.
    ``per_run``: a comparison sets it for each of its runs (so it does not decide whether a comparison
    continues). ``workers``: None when several workers run it, else why they cannot (the refusal says it).
    ``check``: (accept, advice), the value's own rule: ``accept(value)`` or the error says ``advice`` (text,
    or a function giving it); None: the flag's choices, if any, are the rule.
    """

    resumable: bool = False
    commands: tuple = ()
    per_run: bool = False
    workers: str | None = None
    check: tuple | None = None


def option(default, help, *, resumable=False, commands=(), per_run=False, workers=None, check=None, **flag):
    """A dataclass field with a default, its command-line ``Flag`` (``flag``: Flag's fields) and its ``Facts``."""
    facts = Facts(resumable, tuple(commands), per_run, workers, check)
    return dataclasses.field(default=default, metadata={"flag": Flag(help, **flag), "facts": facts})


def check_fields(options):
    """Each field's own rule, as its ``Facts`` and flag say: ``Facts.check``, else the flag's choices (a None
    default allows None). Raises ValueError naming the field, the value and what to use."""
    for field in dataclasses.fields(options):
        value, facts, flag = getattr(options, field.name), facts_of(field), flag_of(field)
        if facts.check is not None:
            accept, advice = facts.check
            if not accept(value):
                raise ValueError(f"{field.name}={value!r}: {advice() if callable(advice) else advice}")
        elif flag is not None and flag.choices is not None and not (value is None and field.default is None):
            choices = tuple(flag.choices() if callable(flag.choices) else flag.choices)
            if value not in choices:
                raise ValueError(f"{field.name}={value!r}: use one of {', '.join(map(repr, choices))}.")


def facts_of(field):
    """The field's ``Facts`` (a field made without ``option``: the defaults)."""
    return field.metadata.get("facts", Facts())


def fields_where(options_class, test):
    """The names of ``options_class``'s fields whose ``Facts`` pass ``test``, in field order."""
    return tuple(field.name for field in dataclasses.fields(options_class) if test(facts_of(field)))


def flag_of(field):
    return field.metadata.get("flag")


def flag_name(field):
    found = flag_of(field)
    return found.name or "--" + field.name.replace("_", "-")


def add_flags(parser, options_class, names=None, defaults=None):
    """Add the flags of ``options_class``'s fields (``names``: only these, in this order) to ``parser``.

    Every flag's default is ``argparse.SUPPRESS``: the namespace holds what was typed. ``defaults``:
    {field: value} a command uses instead of the field's (shown in the help).
    """
    fields = {field.name: field for field in dataclasses.fields(options_class) if flag_of(field)}
    defaults = defaults or {}
    for name in names or fields:
        field = fields[name]
        found = flag_of(field)
        default = defaults.get(name, field.default)
        kwargs = {"dest": name, "default": argparse.SUPPRESS}
        help_text = found.help
        if found.boolean:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif found.value is not _NotASwitch:
            kwargs.update(action="store_const", const=found.value)
        else:
            choices = found.choices() if callable(found.choices) else found.choices
            if choices is not None:
                kwargs["choices"] = tuple(choices)
            if found.parse is not None:
                kwargs["type"] = found.parse
            if found.metavar:
                kwargs["metavar"] = found.metavar
            if found.show_default and default is not None:
                help_text += f" (default: {default})"
        parser.add_argument(flag_name(field), *found.aliases, help=help_text.replace("%", "%%"), **kwargs)


def typed_options(args, options_class):
    """{field: value} of ``options_class``'s fields whose flags were typed (the rest stay as they are)."""
    names = {field.name for field in dataclasses.fields(options_class) if flag_of(field)}
    return {name: value for name, value in vars(args).items() if name in names}
