"""Labelled feedback as data batches: the files that make the data grow.

Labels come back two ways: through `POST /feedback` with a labeller's key
(the service's feedback log, which holds each label with the text it labels
and its source) and as files from a labelling tool (`mlops feedback import`).
Only these trusted labels become data; a client's `/feedback` is a suggestion
(mlops/serving/feedback.py). Each batch is screened first
(mlops/loop/screening.py): a batch that looks poisoned is held for review in
`feedback.held_dir` (mlops/loop/held.py) and blocks nothing. A batch that
passes ends as one new file in `feedback.batches_dir`: a CSV of `id`, `text`,
`label`, named by the time it was made, never rewritten. That directory is a dependency of
`ingest` in dvc.yaml, so DVC hashes it and `dvc repro` re-runs ingest and
everything after it exactly when a batch arrives. A bad file fails with one
line naming the problem and writes nothing; a batch is written atomically.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops.core.batch_files import BATCH_COLUMNS, batched_labels, write_batch
from mlops.core.errors import MlopsError
from mlops.core.feedback_log import read_feedback
from mlops.core.labelling_queue import is_queue_file, unescape_cell
from mlops.core.pipeline import stage_path
from mlops.core.settings import Settings, declared_labels
from mlops.loop.held import hold
from mlops.loop.screening import Yardstick, screen, yardstick
from mlops.serving.traffic import new_ids


def label_set(settings: Settings) -> list[str]:
    """The model's label set: declared in params (validate.labels, else data.source.label_names), else the
    champion's, else the candidate's label map."""
    declared = declared_labels(settings)
    if declared:
        return declared
    candidates = []
    try:
        from mlops.core import registry

        current = registry.champion()
        if current:
            candidates.append(registry.model_path(current["model"]))
    except Exception:  # no BentoML store here: fall back to the candidate
        pass

    candidates.append(stage_path(".", "train", "out"))  # the candidate the pipeline trained
    for directory in candidates:
        label_map = Path(directory) / "label_map.json"
        if label_map.is_file():
            return list(json.loads(label_map.read_text(encoding="utf-8"))["labels"])
    raise MlopsError("no label set: declare validate.labels in params.yaml (or train a model first)")


def latest_choice(path: Path, number: int, task: dict) -> str | None:
    """The label of a Label Studio task: the choice of its latest annotation not cancelled (None: no such
    annotation, or one with no choice made). Pre-annotations (`predictions`) are the model's, never labels."""
    where = f"{path}: task {number}"
    annotations = task.get("annotations")
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise MlopsError(f"{where}: `annotations` is not a list of objects")
    kept = [(str(a.get("updated_at") or a.get("created_at") or ""), index, a)
            for index, a in enumerate(annotations) if not a.get("was_cancelled")]
    if not kept:
        return None
    result = max(kept, key=lambda entry: entry[:2])[2].get("result")
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise MlopsError(f"{where}: an annotation's `result` is not a list of objects")
    choices = [r for r in result if r.get("type") == "choices"]
    named = [r for r in choices if r.get("from_name") == "label"] or choices  # the queue's config names it `label`
    if not named:
        return None
    value = named[-1].get("value")
    picked = value.get("choices") if isinstance(value, dict) else None
    if not isinstance(picked, list) or len(picked) != 1 or not isinstance(picked[0], str):
        raise MlopsError(f"{where}: the annotation's `value.choices` is not one label ({picked!r})")
    return picked[0]


def label_studio_rows(path: Path, tasks: list) -> tuple[list[dict], int]:
    """Rows (`id`, `text`, `label`) of a Label Studio export, and how many tasks had no annotation to take.

    Two of its export formats: JSON (each task with `data` and `annotations`;
    the task's `data.id`, the id the labelling queue gave it, stays the id, so
    the label joins the served traffic), and JSON-MIN (flat objects: the
    task's data with the chosen label under the choices' name, `label`).
    """
    rows, skipped = [], 0
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise MlopsError(f"{path}: task {number} is not a JSON object")
        if "annotations" not in task and "data" not in task:  # JSON-MIN: the row itself
            rows.append(task)
            continue
        data = task.get("data")
        if not isinstance(data, dict):
            raise MlopsError(f"{path}: task {number}: `data` is not an object")
        if not isinstance(data.get("text"), str) or not data["text"].strip():
            raise MlopsError(f"{path}: task {number}: `data.text` is empty or not a string")
        label = latest_choice(path, number, task)
        if label is None:
            skipped += 1
            continue
        identifier = data.get("id")
        rows.append({"id": "" if identifier is None else str(identifier), "text": data.get("text"), "label": label})
    if not rows and skipped:
        raise MlopsError(f"{path}: none of its {skipped} Label Studio tasks has an annotation to import")
    return rows, skipped


def parse_labelled_file(path: Path) -> pd.DataFrame:
    """A CSV or JSONL file with `text` and `label` columns (and optionally `id`), or a Label Studio export
    (.json), or MlopsError in one line."""
    return read_labelled_file(path)[0]


def read_labelled_file(path: Path) -> tuple[pd.DataFrame, int]:
    """parse_labelled_file's rows, and the Label Studio tasks left out for want of an annotation."""
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"{path}: file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise MlopsError(f"{path}: empty file")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise MlopsError(f"{path}: not UTF-8 (byte 0x{raw[error.start]:02x} at position {error.start})") from None
    suffix, skipped = path.suffix.lower(), 0
    document = None
    if suffix == ".json":  # a Label Studio export is one JSON list; anything else is read as JSON lines
        try:
            document = json.loads(content)
        except json.JSONDecodeError:
            pass
    if isinstance(document, list):
        rows, skipped = label_studio_rows(path, document)
        frame = pd.DataFrame(rows)
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(io.StringIO(content), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, ValueError) as error:
            raise MlopsError(f"{path}: not a readable CSV: {str(error).splitlines()[0]}") from None
    elif suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise MlopsError(f"{path}: line {number} is not JSON: {error.msg}") from None
            if not isinstance(row, dict):
                raise MlopsError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
        frame = pd.DataFrame(rows)
    else:
        raise MlopsError(f"{path}: expected a .csv, .jsonl or Label Studio .json file")

    if is_queue_file(frame):  # the labelling queue filled in: its cells carry the formula guard
        frame = frame.assign(**{column: frame[column].map(unescape_cell) for column in ("id", "text", "label")})
    missing = [column for column in ("text", "label") if column not in frame.columns]
    if missing:
        raise MlopsError(f"{path}: no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns)) or 'none'})")
    if frame.empty:
        raise MlopsError(f"{path}: no rows")
    for column in ("text", "label"):
        values = frame[column]
        bad = [i for i, value in enumerate(values) if not isinstance(value, str) or not value.strip()]
        if bad:
            raise MlopsError(f"{path}: row {bad[0] + 1}: {column} is empty or not a string")
    if "id" not in frame.columns:
        frame["id"] = ""
    frame["id"] = frame["id"].fillna("").astype(str)
    return frame[BATCH_COLUMNS].reset_index(drop=True), skipped


def check_label_set(frame: pd.DataFrame, labels: list[str], origin: str) -> None:
    unknown = frame.index[~frame["label"].isin(labels)]
    if len(unknown):
        row = int(unknown[0])
        raise MlopsError(f"{origin}: row {row + 1}: label {frame['label'][row]!r} is not one of the model's labels "
                         f"({', '.join(labels)}); {len(unknown)} row(s) like it")


@dataclass(frozen=True)
class Outcome:
    """What one collection or import did: a new batch, or a held one, and the rows it left out."""

    batch: Path | None = None
    held: Path | None = None
    rows: int = 0
    skipped_without_text: int = 0
    untrusted: int = 0
    reasons: tuple[str, ...] = ()
    unannotated: int = 0  # Label Studio tasks in an imported export that no one annotated


def champion_yardstick(settings: Settings, tag: str | None = None) -> Yardstick:
    """The champion's (or the stored model `tag`'s) own measure of confidence and error
    (mlops/loop/screening.py), from the scored reference stored with it; without one, the fixed fallback."""
    try:
        from mlops.core import registry

        current = registry.champion() if tag is None else {"model": tag, "metrics": stored_metrics(tag)}
        if current is None:
            return yardstick(None, settings.feedback.screen, None)
        accuracy = (current.get("metrics") or {}).get("accuracy")
        reference_file = registry.model_path(current["model"]) / registry.REFERENCE_FILE
    except Exception:  # no BentoML store here
        return yardstick(None, settings.feedback.screen, None)
    test_error = None if accuracy is None else 1.0 - float(accuracy)
    reference = pd.read_parquet(reference_file, columns=["label", "prediction", "confidence"]) \
        if reference_file.is_file() else None
    return yardstick(reference, settings.feedback.screen, test_error)


def stored_metrics(tag: str) -> dict:
    """The headline metrics a stored model was registered with."""
    import bentoml

    metrics = bentoml.models.get(tag).info.metadata.get("metrics") or {}
    return json.loads(metrics) if isinstance(metrics, str) else dict(metrics)


def champion_answers(settings: Settings, texts: list[str], tag: str | None = None) -> pd.DataFrame | None:
    """The champion's (or the stored model `tag`'s) prediction and confidence for each text (None without a
    champion): what an imported file is screened against, as served labels are against the answer they got."""
    try:
        from mlops.core import registry

        current = registry.champion() if tag is None else {"model": tag}
    except Exception:
        return None
    if current is None:
        return None
    from mlops.ml.variants import load_served

    classifier = load_served(registry.model_path(current["model"]), settings.serve.precision)
    proba = classifier.predict_proba(texts, settings.serve.micro_batch, settings.serve.max_batch_tokens)
    labels = list(classifier.labels)
    return pd.DataFrame({"prediction": [labels[i] for i in proba.argmax(axis=1)],
                         "confidence": proba.max(axis=1).astype(float)})


def admit(settings: Settings, frame: pd.DataFrame, kind: str, origin: str) -> tuple[Path | None, Path | None,
                                                                                  tuple[str, ...]]:
    """Screen a checked batch, then write it as data, or hold it for review; (batch, held, reasons)."""

    verdict = screen(frame, settings.feedback.screen, champion_yardstick(settings))
    if verdict.held:
        return None, hold(frame, Path(settings.feedback.held_dir), kind, verdict, origin), tuple(verdict.reasons)
    batch = write_batch(frame, Path(settings.feedback.batches_dir), kind)
    track_with_dvc(batch.parent)
    return batch, None, ()


def import_file(settings: Settings, path: Path) -> Outcome:
    """Check a labelled file whole, screen it against the champion, then write it as one new batch (or hold it)."""
    frame, unannotated = read_labelled_file(path)
    check_label_set(frame, label_set(settings), str(path))

    missing_ids = frame["id"] == ""
    frame.loc[missing_ids, "id"] = new_ids(int(missing_ids.sum()))
    answers = champion_answers(settings, frame["text"].tolist())
    screened = frame.assign(source=f"import:{Path(path).name}")
    if answers is not None:
        screened = screened.assign(prediction=answers["prediction"].to_numpy(),
                                   confidence=answers["confidence"].to_numpy())
    batch, held, reasons = admit(settings, screened, f"import-{Path(path).stem}", str(path))
    return Outcome(batch, held, len(frame), reasons=reasons, unannotated=unannotated)


def collect_served(settings: Settings, feedback_log: Path) -> Outcome:
    """Trusted labels posted to /feedback that no batch holds yet, screened, as one new batch (or a held one).

    A label for a text whose log line holds only its hash (serve.traffic.hash_texts) cannot train a model: it
    is counted as skipped. A record without a labeller's role (a client's, or one written before roles
    existed) is counted as untrusted and left out.
    """

    directory = Path(settings.feedback.batches_dir)
    done = batched_labels(directory) | batched_labels(Path(settings.feedback.held_dir))  # held ones are handled
    fresh = [r for r in read_feedback(feedback_log) if done.get(r["id"]) != r["label"]]
    records = [r for r in fresh if r.get("role") == "labeller"]
    untrusted = len(fresh) - len(records)
    usable = [r for r in records if isinstance(r.get("text"), str) and r["text"].strip()]
    skipped = len(records) - len(usable)
    if not usable:
        return Outcome(skipped_without_text=skipped, untrusted=untrusted)
    frame = pd.DataFrame([{"id": r["id"], "text": r["text"], "label": r["label"], "source": r.get("source"),
                           "prediction": r.get("prediction"), "confidence": r.get("confidence")} for r in usable])
    check_label_set(frame, label_set(settings), str(feedback_log))
    batch, held, reasons = admit(settings, frame, "served", str(feedback_log))
    return Outcome(batch, held, len(frame), skipped, untrusted, reasons)


def track_with_dvc(directory: Path) -> Path | None:
    """`dvc add` the batches directory of the DVC project here, so its batches reach the cache and, with
    `dvc push`, the remote: a label acknowledged once is never only on one disk. Its .dvc file is what git
    records (commit it). Not a DVC project (a hand run elsewhere): nothing to track."""
    root = Path.cwd()
    if not (root / ".dvc").is_dir():
        return None
    from dvc.repo import Repo

    target = Path(directory).resolve()
    try:
        with Repo(str(root)) as repo:
            repo.add(str(target.relative_to(root.resolve())))
    except Exception as error:  # the batch itself is written; only its tracking is behind
        print(f"feedback: warning: `dvc add {directory}` failed ({str(error).splitlines()[0]}); the batch is "
              f"written: run `dvc add {directory}` before `dvc push`", flush=True)
        return None
    dvc_file = target.with_name(target.name + ".dvc")
    print(f"feedback: {directory} tracked by DVC in {dvc_file.relative_to(root.resolve())} (`dvc push` sends "
          f"the batches to the remote; commit the .dvc file)", flush=True)
    return dvc_file

