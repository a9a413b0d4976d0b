"""``remoteclip-explorer prune-empty``: delete the chips of a library that ingest now skips as empty."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.cli.model_table import library_index, stored_model_id, stored_model_option
from pipelines.cli.options import (
    db_option,
    echo_json,
    min_valid_option,
    output_format_option,
    storage_options_option,
    weights_option,
)
from pipelines.ingest.plan import skip_reasons_text
from pipelines.ingest.prune import prune_empty_chips


@click.command("prune-empty")
@db_option
@storage_options_option
@min_valid_option
@stored_model_option("the library's first model")
@weights_option
@click.option("--dry-run", is_flag=True, help="Only report the empty chips; delete nothing.")
@output_format_option("table", "json")
def prune_empty(
    db: Path | str,
    storage_options: dict[str, str],
    min_valid: float,
    model_name: str | None,
    weights: Path | None,
    dry_run: bool,
    output_format: str,
) -> None:
    """Delete the chips of the library at --db that are empty by ingest's rule: mostly nodata, a black or
    white border without a nodata flag, or flat. In a library two models embedded, the chips of --model's table.

    Each scene's chips are read again from its file; scenes whose file is gone or changed are not checked.
    """
    index = library_index(db, stored_model_id(db, model_name, weights, storage_options), storage_options)
    report = prune_empty_chips(index, min_valid, dry_run=dry_run)
    if output_format == "json":
        echo_json({"db": str(db), **report.to_dict()})
        return
    for scene in report.scenes:
        name = Path(scene.scene_path).name
        if scene.unchecked is not None:
            click.echo(f"{name}: not checked ({scene.unchecked})")
        elif scene.empty_chips:
            reasons = skip_reasons_text(scene.empty)
            click.echo(f"{name}: {scene.empty_chips} of {scene.chips} chips empty ({reasons})")
        else:
            click.echo(f"{name}: none of {scene.chips} chips empty")
    done = f"{report.empty_chips} would be deleted (dry run)" if dry_run else f"{report.deleted} deleted"
    click.echo(f"{report.empty_chips} empty chips in {len(report.scenes)} scenes, {done}: {db}")
