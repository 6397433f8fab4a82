"""A click group that imports a sub-command's module only when that sub-command runs.

``viocli --help`` lists every command from the registry's one-line help, so listing them imports
nothing but click. The group also turns a :class:`~viocli.errors.ViocliError` into its exit code.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """Group whose sub-commands are ``{name: ("module:attribute", "short help")}``."""

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            target = self.lazy_commands[cmd_name][0]
            module_name, attribute = target.split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy_commands:
                rows.append((name, self.lazy_commands[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        from viocli.errors import ViocliError

        try:
            return super().invoke(ctx)
        except ViocliError as error:
            from viocli.cli.report import report_error

            report_error(error)
            ctx.exit(error.exit_code)
