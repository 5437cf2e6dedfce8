"""``yihao train``: learn the category model from the tickets in the database.

Labels are what people decided — an operator's category at accept, or a station's
correction (the newest correction wins) — never the model's own guesses, which would only
teach it its mistakes. A stratified fifth of the labelled tickets is held out; the new model
is scored on it beside the active model (or, before any, the taxonomy's keywords) and
becomes active only when its macro-F1 is higher. Either way the file and its metrics are
kept, so the history of models can be read back.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from . import text as tx
from .classifier import CategoryModel, accuracy, keyword_guess, macro_f1, to_doc, train
from .models import CategoryCorrection, RoutingModel
from .taxonomy import default_taxonomy

MIN_LABELLED = 20
MIN_PER_CLASS = 3
MAX_UNLABELLED = 20_000


@dataclass
class Example:
    ref: str
    text: str
    title: str
    content: str
    label: str


@dataclass
class TrainReport:
    version: int | None
    activated: bool
    decision: str
    metrics: dict[str, Any] = field(default_factory=dict)


def labelled_examples() -> tuple[list[Example], int]:
    """Tickets with a human-decided category (level 1), and how many of them are corrections."""
    from server.core.db import db
    from server.tickets.models import Ticket

    latest = sa.select(CategoryCorrection.ticket_id,
                       sa.func.max(CategoryCorrection.id).label("cid")).group_by(
        CategoryCorrection.ticket_id).subquery()
    corrected = dict(db.session.execute(
        sa.select(CategoryCorrection.ticket_id, CategoryCorrection.to_code).join(
            latest, latest.c.cid == CategoryCorrection.id)).all())
    rows = db.session.execute(
        sa.select(Ticket.id, Ticket.number, Ticket.title, Ticket.content, Ticket.category_code,
                  Ticket.category_source).where(Ticket.category_code.is_not(None))
        .order_by(Ticket.id)).all()
    taxonomy = default_taxonomy()
    out: list[Example] = []
    for row in rows:
        code = corrected.get(row.id)
        if code is None and row.category_source not in (None, "operator", "correction"):
            continue  # the model's own guess: not a label
        code = code or row.category_code
        if taxonomy.get(code[:2]) is None:
            continue
        out.append(Example(row.number or str(row.id), tx.ticket_text(row.title, row.content),
                           row.title, row.content, code[:2]))
    return out, len(corrected)


def unlabelled_texts(limit: int = MAX_UNLABELLED) -> list[tuple[str, str]]:
    from server.core.db import db
    from server.tickets.models import Ticket

    rows = db.session.execute(sa.select(Ticket.title, Ticket.content).order_by(
        Ticket.id.desc()).limit(limit)).all()
    return [(r.title, r.content) for r in rows]


def place_names(limit: int = 50_000) -> list[str]:
    """Unit and grid names for the segmenter's user dictionary, so "浑河湾社区" stays one
    word (and one feature) instead of three characters' worth of noise."""
    from grids.models import Grid
    from hierarchy.models import Unit
    from server.core.db import db

    names = db.session.execute(sa.select(Unit.name).limit(limit)).scalars().all()
    names += db.session.execute(sa.select(Grid.name).limit(limit)).scalars().all()
    return sorted({n for n in names if n and 2 <= len(n) <= 20})


def holdout_split(labels: list[str], fraction: float = 0.2, seed: int = 0) -> tuple[
        list[int], list[int]]:
    """Stratified: each class with at least two examples gives about ``fraction`` of them."""
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    test_idx: list[int] = []
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for idx in by_class.values():
        idx = list(rng.permutation(idx))
        n_test = round(len(idx) * fraction) if len(idx) >= 2 else 0
        n_test = max(1, n_test) if len(idx) >= 3 else n_test
        test_idx += idx[:n_test]
        train_idx += idx[n_test:]
    return sorted(train_idx), sorted(test_idx)


def _score(predicted: list[str], truth: list[str]) -> dict[str, float]:
    return {"macro_f1": round(macro_f1(truth, predicted), 4),
            "accuracy": round(accuracy(truth, predicted), 4)}


def train_from_database(home: Path, *, force: bool = False, seed: int = 0,
                        progress: Any = None) -> TrainReport:
    """Train, evaluate on held-out tickets, store the file and its row; activate when better.

    Never commits: the caller (the CLI) commits once the file is written.
    """
    from server.core.db import db, utcnow

    from .service import active_model, model_changed

    say = progress or (lambda _msg: None)
    examples, n_corrections = labelled_examples()
    counts = Counter(e.label for e in examples)
    usable = {c for c, n in counts.items() if n >= MIN_PER_CLASS}
    examples = [e for e in examples if e.label in usable]
    if len(examples) < MIN_LABELLED or len(usable) < 2:
        return TrainReport(None, False, (
            f"not enough history yet: {len(examples)} labelled tickets in {len(usable)} "
            f"categories (need {MIN_LABELLED} in at least 2, {MIN_PER_CLASS}+ each); "
            "routing keeps working from the taxonomy's own words"))
    say(f"{len(examples)} labelled tickets ({n_corrections} corrected) in {len(usable)} "
        f"categories")
    labels = [e.label for e in examples]
    tr, te = holdout_split(labels, seed=seed)
    unlabelled = unlabelled_texts()
    places = place_names()
    say(f"training on {len(tr)}, holding out {len(te)}; vocabulary from {len(unlabelled)} "
        "ticket texts")
    candidate = train([(examples[i].title, examples[i].content) for i in tr],
                      [labels[i] for i in tr], unlabeled=unlabelled, extra_words=places,
                      seed=seed)
    normalized_te = [to_doc(examples[i].title, examples[i].content) for i in te]
    truth = [labels[i] for i in te]
    metrics: dict[str, Any] = {"holdout": len(te), "train": len(tr),
                               "classes": dict(sorted(counts.items())),
                               "new": _score(candidate.predict_codes(normalized_te), truth)}
    current = active_model()
    if current is not None:
        metrics["active"] = {"version": current.version,
                             **_score(current.predict_codes(normalized_te), truth)}
        bar, against = metrics["active"]["macro_f1"], f"active model v{current.version}"
    else:
        kw = [keyword_guess(examples[i].title, examples[i].content).level1 for i in te]
        metrics["keywords"] = _score(kw, truth)
        bar, against = metrics["keywords"]["macro_f1"], "the taxonomy keywords"
    better = metrics["new"]["macro_f1"] > bar
    say(f"held-out macro-F1 {metrics['new']['macro_f1']:.3f} against {bar:.3f} ({against})")
    # The file holds a model refitted on every labelled ticket; the metrics are the
    # held-out ones of the same recipe.
    final = train([(e.title, e.content) for e in examples], labels, unlabeled=unlabelled,
                  extra_words=places, seed=seed,
                  refs=[e.ref for e in examples])
    version = (db.session.execute(sa.select(sa.func.max(RoutingModel.version))).scalar() or 0) + 1
    path = _write(home, version, final)
    activate = better or force
    decision = (f"{'activated' if activate else 'kept inactive'}: held-out macro-F1 "
                f"{metrics['new']['macro_f1']:.3f} vs {bar:.3f} ({against})"
                + (" — forced" if force and not better else ""))
    row = RoutingModel(version=version, path=str(path), sha256=_sha256(path), metrics=metrics,
                       n_train=len(examples), n_corrections=n_corrections, active=False,
                       decision=decision[:300], created_at=utcnow())
    db.session.add(row)
    if activate:
        db.session.execute(sa.update(RoutingModel).where(RoutingModel.active.is_(True)).values(
            active=False))
        row.active = True
        row.activated_at = utcnow()
        model_changed(db.session)
    db.session.flush()
    return TrainReport(version, activate, decision, metrics)


def _write(home: Path, version: int, model: CategoryModel) -> Path:
    folder = home / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"routing-v{version}.pkl"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
