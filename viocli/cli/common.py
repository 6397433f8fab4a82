"""Options and guards shared by every command.

``-d/--deployment`` and ``-v/--verbose`` are accepted both before and after the sub-command
(``viocli -d vio show`` and ``viocli show -d vio``), as VIO's runbooks use the latter.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from viocli.errors import NotLanded, Refused, ViocliError

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_DEPLOYMENT = "viocli.deployment"
_VERBOSE = "viocli.verbose"


class ReportedError(click.ClickException):
    """A viocli error raised while click parses the command line, reported like any other.

    Option callbacks run before the LazyGroup's handler (for ``viocli -d X show`` even before
    the group is invoked), so the error travels as a ClickException that click's ``main`` shows.
    """

    def __init__(self, error: ViocliError):
        super().__init__(error.message)
        self.error = error
        self.exit_code = error.exit_code

    def show(self, file: Any = None) -> None:
        from viocli.cli.report import report_error

        report_error(self.error)


def _store_deployment(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:  # not given, or shell completion
        return
    from viocli.names import check_deployment_name

    try:
        ctx.meta[_DEPLOYMENT] = check_deployment_name(value, "-d")
    except ViocliError as error:
        raise ReportedError(error) from None


def _store_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    ctx.meta[_VERBOSE] = ctx.meta.get(_VERBOSE, 0) + (value or 0)


def common_options(f: F | None = None, *, verbose: bool = True) -> Any:
    """Add ``-d/--deployment NAME`` and ``-v/--verbose`` to a command or group.

    ``verbose=False`` leaves out ``-v`` where VIO's syntax uses it for something else
    (``patch install -p NAME -v VERSION``).
    """
    if f is None:
        return functools.partial(common_options, verbose=verbose)
    f = click.option(
        "-d",
        "--deployment",
        metavar="NAME",
        expose_value=False,
        callback=_store_deployment,
        help="Deployment to act on (default: [DEFAULT] deployment in viocli.conf).",
    )(f)
    if not verbose:
        return f
    f = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_store_verbose,
        help="More detail: -v every task, -vv Ansible's own -v.",
    )(f)
    return f


def format_option(f: F) -> F:
    """Add ``--format table|json`` to a read command."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(f)


def inventory_option(f: F) -> F:
    """Add ``-i/--inventory FILE``: the inventory file to use instead of the deployment's own."""
    return click.option(
        "-i",
        "--inventory",
        "inventory_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Inventory file (default: the one the deployment was created from).",
    )(f)


def deployment_name() -> str | None:
    """The deployment named with -d on the command line, if any (it follows the name rule)."""
    return click.get_current_context().meta.get(_DEPLOYMENT)


def verbosity() -> int:
    """How many -v were given, before and after the sub-command."""
    return click.get_current_context().meta.get(_VERBOSE, 0)


def requires_root(f: F) -> F:
    """Refuse (exit 4) unless root: the command changes something or reads secrets. Opens the log."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.geteuid() != 0:
            path = click.get_current_context().command_path
            raise Refused(f"{path} must run as root: run it again with sudo")
        from viocli.logsetup import setup_logging
        from viocli.settings import load_settings

        setup_logging(load_settings().log_file)
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def not_landed(capability: str) -> Callable[[F], F]:
    """Mark a command whose capability is not built yet: it says so in one line and exits 4."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            path = click.get_current_context().command_path
            raise NotLanded(f"{path} is not available yet: it lands with {capability}")

        wrapper.__viocli_not_landed__ = capability  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
