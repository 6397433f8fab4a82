"""``viocli completion SHELL``: print click's completion script."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  viocli completion bash > /etc/bash_completion.d/viocli
    zsh:   viocli completion zsh > "${fpath[1]}/_viocli"
    fish:  viocli completion fish > ~/.config/fish/completions/viocli.fish
    """
    from click.shell_completion import get_completion_class

    from viocli.cli.main import cli

    completion_class = get_completion_class(shell)
    assert completion_class is not None
    script = completion_class(cli, {}, "viocli", "_VIOCLI_COMPLETE").source()
    click.echo(script)
