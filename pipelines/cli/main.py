"""The ``remoteclip-explorer`` command: one click group, one module per subcommand.

Subcommands are imported lazily so that ``remoteclip-explorer --help`` stays fast and a broken optional
dependency of one subcommand does not break the others.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from remoteclip.errors import ExplorerError

#: subcommand name -> "module:attribute" of its click command
SUBCOMMANDS: dict[str, str] = {
    "ingest": "pipelines.cli.ingest:ingest",
    "prune-empty": "pipelines.cli.prune_empty:prune_empty",
    "search": "pipelines.cli.search:search",
    "detector": "pipelines.cli.detector:detector",
    "label": "pipelines.cli.label:label",
    "change": "pipelines.cli.change:change",
    "models": "pipelines.cli.models:models",
    "embed": "pipelines.cli.models:embed",
    "classify": "pipelines.cli.models:classify",
    "count": "pipelines.cli.models:count",
    "build-trainset": "pipelines.cli.build_trainset:build_trainset",
    "train": "pipelines.cli.train:train",
    "train-heads": "pipelines.cli.train_heads:train_heads_cmd",
    "train-locator": "pipelines.cli.train_locator:train_locator_command",
    "evaluate": "pipelines.cli.evaluate:evaluate",
    "bench": "pipelines.cli.bench:bench",
    "app": "pipelines.cli.app:app",
}


#: loggers whose level -v/-q change
PROJECT_LOGGERS = ("remoteclip", "tiles", "pipelines", "app")


class LazyGroup(click.Group):
    """A click group whose subcommands (``name -> "module:attribute"``) are imported on first use."""

    def __init__(self, *args: object, lazy_subcommands: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy_subcommands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_subcommands.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            return _unavailable_command(cmd_name, exc)


def _unavailable_command(name: str, reason: ImportError) -> click.Command:
    """A placeholder that explains why a subcommand cannot be loaded (for example a missing package)."""

    def fail() -> None:
        raise click.ClickException(f"'{name}' is unavailable: {reason}")

    return click.Command(name, callback=fail, help=f"(unavailable: {reason})")


@click.group(
    cls=LazyGroup, lazy_subcommands=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less log output (repeatable).")
@click.version_option(package_name="remoteclip-explorer")
def cli(verbose: int, quiet: int) -> None:
    """RemoteCLIP Explorer: search, label and count things in satellite and drone imagery."""
    level = max(logging.DEBUG, logging.WARNING - 10 * verbose + 10 * quiet)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for package in PROJECT_LOGGERS:  # third-party libraries (torch, ray, lance) stay at WARNING
        logging.getLogger(package).setLevel(level)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 1."""
    try:
        # without standalone mode, click returns (not raises) the code of a command's `Exit`
        exit_code = cli.main(args=argv, prog_name="remoteclip-explorer", standalone_mode=False)
        if isinstance(exit_code, int) and exit_code:
            sys.exit(exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except ExplorerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
