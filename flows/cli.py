"""``c2r``: the command line of cad2real."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="cad2real: train vision models from 3D CAD models; evaluate on real photos.",
                  no_args_is_help=True)


@app.command()
def run(
    all_methods: bool = typer.Option(False, "--all", help="train and evaluate every method of train.methods"),
    methods: str | None = typer.Option(None, help="comma-separated methods (default: train.default)"),
) -> None:
    """Run the pipeline (the Prefect flow over the DVC stages) and print where the outputs are."""
    from flows import pipeline

    pipeline.main(["--all"] if all_methods else (["--methods", methods] if methods else []))


@app.command()
def serve(
    cron: str = typer.Option("0 2 * * *", help="when to run, a cron expression (default: every night at 02:00)"),
    name: str = typer.Option("scheduled", help="deployment name"),
    register_only: bool = typer.Option(False, "--register-only",
                                       help="register the scheduled deployment and exit (a worker runs it)"),
) -> None:
    """Serve the pipeline on a cron schedule (runs in this process until stopped)."""
    from prefect import serve as prefect_serve

    from flows.pipeline import deployment

    dep = deployment(cron, Path("."), name)
    if register_only:
        typer.echo(f"registered deployment {dep.apply()} ({name}, cron {cron!r})")
        return
    typer.echo(f"serving cad2real-pipeline/{name} on cron {cron!r}; Ctrl-C to stop")
    prefect_serve(dep)


@app.command()
def stage(name: str = typer.Argument(..., help="a stage of dvc.yaml (catalog, ..., train@gmcml, evaluate@gmcml)")
          ) -> None:
    """Bring one stage (and what it depends on) up to date with `dvc repro NAME`."""
    from flows.pipeline import dvc_executable, run_streaming, stages, venv_env

    known = stages()
    if name not in known:
        typer.echo(f"unknown stage {name!r}; dvc.yaml has: {', '.join(known)}", err=True)
        raise typer.Exit(2)
    returncode, _ = run_streaming([dvc_executable(), "repro", name], ".", venv_env())
    raise typer.Exit(returncode)


@app.command()
def results(
    out: Path = typer.Option(Path("RESULTS.md"), help="where to write the table"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    """RESULTS.md from the metrics of every method of train.methods (run `make compare` first)
    and the retrieval and exemplar-detection reports."""
    from core.params import load_params
    from core.results import write_results

    p = load_params(params)
    written = write_results(Path(p.paths.metrics), p.train.methods, out, "make compare", Path(p.paths.reports))
    typer.echo(f"wrote {written}")


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


def _registry(params: Path):
    """(MlflowClient, model name) for the project's tracking store."""
    from flows import _env  # noqa: F401

    import mlflow

    from core.params import load_params
    from core.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(Path(".")))
    return mlflow.tracking.MlflowClient(), load_params(params).promotion.model_name


@app.command()
def status(params: Path = typer.Option(Path("params.yaml"))) -> None:
    """Champion, challenger and the last pipeline runs."""
    from core.registry import CHALLENGER, CHAMPION, champion_history
    from core.tracking import EXPERIMENT

    client, name = _registry(params)
    for alias in (CHAMPION, CHALLENGER):
        try:
            v = client.get_model_version_by_alias(name, alias)
            typer.echo(f"{alias:<11} {name} v{v.version}  {v.tags.get('promotion', '')}: "
                       f"{v.tags.get('promotion_reasons', '')}")
        except Exception:  # noqa: BLE001 -- no such alias or model yet
            typer.echo(f"{alias:<11} none")
    try:
        typer.echo(f"history     {champion_history(client, name)}")
    except Exception:  # noqa: BLE001
        pass
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        typer.echo("no pipeline run tracked yet (make run)")
        return
    runs = client.search_runs([experiment.experiment_id], "tags.`cad2real.kind` = 'pipeline'",
                              order_by=["attributes.start_time DESC"], max_results=5)
    for r in runs:
        typer.echo(f"run {r.info.run_id[:8]}  {r.info.status:<9} data {r.data.tags.get('data_version', '?')}  "
                   f"model v{r.data.tags.get('model_version', '-')}  {r.data.tags.get('promotion', '')}")


@app.command()
def promote(version: str = typer.Option(..., help="the model version to make champion"),
            params: Path = typer.Option(Path("params.yaml"))) -> None:
    """Make a registered version the champion by hand (recorded as a manual promotion)."""
    from core.registry import set_champion

    client, name = _registry(params)
    client.get_model_version(name, version)  # fails with MLflow's message when it does not exist
    set_champion(client, name, version)
    client.set_model_version_tag(name, version, "promotion", "promoted by hand (c2r promote)")
    typer.echo(f"{name} v{version} is now champion")


@app.command()
def rollback(params: Path = typer.Option(Path("params.yaml"))) -> None:
    """Make the previous champion the champion again."""
    from core.registry import rollback as roll_back

    client, name = _registry(params)
    try:
        version = roll_back(client, name)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name} v{version} is champion again")


@app.command()
def checkout(run_id: str = typer.Argument(..., help="an MLflow pipeline run id (c2r status lists them)"),
             params: Path = typer.Option(Path("params.yaml"))) -> None:
    """Restore exactly the code, params and data of a pipeline run: git checkout of its
    commit, its dvc.lock, then dvc pull (from the DVC remote, or the local cache)."""
    import shutil
    import subprocess

    import mlflow

    from flows.pipeline import dvc_executable

    client, _ = _registry(params)
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 -- MLflow's "run not found"
        typer.echo(f"{run_id}: no such MLflow run ({exc})", err=True)
        raise typer.Exit(2) from None
    commit = run.data.tags.get("git_commit", "unknown")
    if commit == "unknown":
        typer.echo(f"run {run_id} has no git commit recorded", err=True)
        raise typer.Exit(2)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, check=True).stdout.strip()
    if dirty:
        typer.echo("the working tree has uncommitted changes: commit or stash them first", err=True)
        raise typer.Exit(2)
    if commit.endswith("-dirty"):
        typer.echo(f"warning: run {run_id} ran with uncommitted changes on {commit[:40]}; restoring that commit",
                   err=True)
    lock = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="dvc.lock")
    subprocess.run(["git", "checkout", "-q", commit[:40]], check=True)
    shutil.copyfile(lock, "dvc.lock")
    pulled = subprocess.run([dvc_executable(), "pull", "--force"], capture_output=True, text=True)
    if pulled.returncode != 0:
        subprocess.run([dvc_executable(), "checkout", "--force"], check=True)
    typer.echo(f"restored run {run_id}: commit {commit[:12]}, data {run.data.tags.get('data_version', '?')} "
               f"({'pulled from the DVC remote' if pulled.returncode == 0 else 'from the local DVC cache'}); "
               "return with `git checkout - && git checkout dvc.lock && dvc checkout`")


@app.command()
def validate(
    params: Path = typer.Option(Path("params.yaml")),
    evalsets: bool = typer.Option(True, help="also the evaluation datasets of evaluate.datasets that are on disk"),
) -> None:
    """Run the data contracts (great-expectations) on every manifest and evaluation
    dataset; exit 1 on a failure."""
    from core.contracts import validate_evalset
    from core.evalsets import DatasetNotFound
    from core.params import ParamsError, load_params
    from stages.evaluate import open_dataset
    from stages.validate import check

    try:
        loaded = load_params(params)
        results = check(loaded)
        for d in loaded.evaluate.datasets if evalsets else ():
            try:
                results.append(validate_evalset(open_dataset(d, loaded), seed=loaded.seed, name=d.name,
                                                image_sample=loaded.contracts.image_sample))
            except DatasetNotFound as exc:
                typer.echo(f"{d.name}: {exc}")
    except (ParamsError, FileNotFoundError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    for r in results:
        typer.echo(f"{r.suite:<18} {r.rows:>7} rows  {'passed' if r.success else 'FAILED'}  {r.manifest}")
        for line in r.failures:
            typer.echo(f"    {line}")
    if not all(r.success for r in results):
        raise typer.Exit(1)


def _default_model(params: Path) -> str:
    """The registry's champion when there is one, else the trained model folder."""
    from core.params import load_params

    import os

    from core.tracking import STORE_DIR

    from core.registry import best_method

    loaded = load_params(params)
    method = best_method(Path("."), loaded, loaded.train.default) or loaded.train.default[0]
    local = str(Path(loaded.paths.models) / method)
    if not os.environ.get("MLFLOW_TRACKING_URI") and not (Path(STORE_DIR) / "mlflow.db").is_file():
        return local  # no tracking store here: do not create one just to look
    try:
        client, name = _registry(params)
        client.get_model_version_by_alias(name, "champion")
        return f"models:/{name}@champion"
    except Exception:  # noqa: BLE001 -- no registry, model or champion yet
        return local


def _local_model(uri: str) -> Path:
    """A model folder for ``uri``: the folder itself, or the predictor inside a registered
    (``models:/``) or logged (``runs:/``) MLflow model, downloaded from the store."""
    if not uri.startswith(("models:/", "runs:/")):
        return Path(uri)
    import mlflow

    from core.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(Path(".")))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    found = sorted((local / "artifacts").rglob("predictor.json"))
    return found[0].parent if found else local


@app.command()
def predict(
    images: list[Path] = typer.Argument(..., help="image files or folders (searched recursively)"),
    model: str | None = typer.Option(None, help="a model folder or a registry URI (models:/NAME@champion); "
                                     "default: the registry's champion, else the best evaluated of train.default"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document instead of a table"),
    top: int = typer.Option(3, min=1, help="how many categories (with --exemplar: detections) to list per image"),
    exemplar: bool = typer.Option(False, "--exemplar", help="exemplar detection (seed 004): boxes with category, "
                                  "CAD model and pose (the view database, φ and the exemplar stage's calibration)"),
    min_score: float = typer.Option(0.0, help="--exemplar: drop calibrated scores below this (0: an expected "
                                    "0.01%% false-positive rate per window)"),
    viewpoint: str | None = typer.Option(None, "--viewpoint", help="a viewpoint method of viewpoint.methods (seed 004 "
                                         "ch. 5), e.g. joint_classif: category and azimuth/elevation/theta"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    """The category (and viewpoint, when the model has one) of each image; with
    ``--exemplar``, the objects it finds: box, category, CAD model, view and pose."""
    import json

    if exemplar:
        _predict_exemplar(images, params, as_json, top, min_score)
        return
    from core.params import ParamsError, load_params
    from core.predictors import PredictorError, load_predictor, predict_files

    try:
        if viewpoint is not None:
            model = str(Path(load_params(params).paths.viewpoint) / viewpoint)
        if model is None:
            model = _default_model(params)
        predictor = load_predictor(_local_model(model))
    except (ParamsError, PredictorError, FileNotFoundError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    files = _image_files(images)
    records = predict_files(predictor, files, top_k=min(top, len(predictor.categories)))
    if as_json:
        typer.echo(json.dumps({"model": model, "training_data": predictor.info.get("training_data"),
                               "predictions": records}, indent=2))
    else:
        for rec in records:
            if "error" in rec:
                typer.echo(f"{rec['image']}\tERROR {rec['error']}")
                continue
            view = rec.get("viewpoint")
            extra = f"\taz {view['azimuth']} el {view['elevation']} th {view['theta']}" if view else ""
            others = ", ".join(f"{t['category']} {t['probability']:.2f}" for t in rec["top"][1:])
            typer.echo(f"{rec['image']}\t{rec['category']}\t{rec['probability']:.2f}{extra}"
                       + (f"\t({others})" if others else ""))
    if any("error" in r for r in records):
        raise typer.Exit(1)


def _image_files(images: list[Path]) -> list[Path]:
    """The image files of the arguments; exit 2 naming the problem when there are none."""
    from core.predictors import image_files

    try:
        files = image_files(images)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if not files:
        typer.echo(f"no images found in {', '.join(map(str, images))}", err=True)
        raise typer.Exit(2)
    return files


def _predict_exemplar(images: list[Path], params: Path, as_json: bool, top: int, min_score: float) -> None:
    import json

    from core.detector import Detector
    from core.io import read_image
    from core.params import ParamsError, load_params

    try:
        detector = Detector(load_params(params))
    except (ParamsError, FileNotFoundError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    files = _image_files(images)
    records = []
    for path in files:
        try:
            found = detector(read_image(path), min_score)[:top]
            records.append({"image": str(path), "detections": [{k: d[k] for k in (
                "box", "category", "score", "model_id", "sample_id", "azimuth", "elevation", "theta")} for d in found]})
        except ValueError as exc:
            records.append({"image": str(path), "error": str(exc)})
    if as_json:
        typer.echo(json.dumps({"detector": detector.info, "predictions": records}, indent=2))
    else:
        for rec in records:
            if "error" in rec:
                typer.echo(f"{rec['image']}\tERROR {rec['error']}")
                continue
            if not rec["detections"]:
                typer.echo(f"{rec['image']}\tno detection scoring >= {min_score}")
            for d in rec["detections"]:
                box = ",".join(f"{v:.0f}" for v in d["box"])
                typer.echo(f"{rec['image']}\t{d['category']}\t{d['score']:.2f}\tbox {box}\tmodel {d['model_id']}"
                           f"\taz {d['azimuth']:.0f} el {d['elevation']:.0f} th {d['theta']:.0f}")
    if any("error" in r for r in records):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
