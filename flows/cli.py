"""``c2r``: the command line of cad2real."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="cad2real: train vision models from 3D CAD models; evaluate on real photos.",
                  no_args_is_help=True)


@app.command()
def run() -> None:
    """Run the pipeline (dvc repro) and print where the outputs are."""
    from flows import pipeline

    pipeline.main()


@app.command()
def check(params: Path = typer.Option(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate a params file against the schema."""
    from core.params import ParamsError, load_params

    try:
        load_params(params)
    except ParamsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{params}: ok")


@app.command()
def gallery(
    out: Path = typer.Option(Path("docs/gallery.jpg"), help="where to write it (.jpg or .png)"),
    per_class: int = typer.Option(4, help="renders and composites per class"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    """A gallery image from the current outputs: one row per class, renders then composites."""
    from core.gallery import make_gallery
    from core.io import write_image
    from core.params import load_params

    p = load_params(params)
    image = make_gallery(Path(p.paths.renders), Path(p.paths.composites), Path(p.paths.proxy_real), per_class)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, image)
    typer.echo(f"gallery: wrote {out} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    app()
