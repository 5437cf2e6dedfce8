"""Smart-routing benchmark: category accuracy, latency, training time, duplicates, urgency.

On the government-message data set (``../shared/datasets/gov-messages/``, benchmark data
only — never copied into the project):

1. **category, level 1**: stratified k-fold cross-validation (default 5) on
   ``labeled_train.csv``, repeated for several shuffles of the folds (``--seeds``, default
   0 1 2: one split is too noisy a judge on 340 messages, ±0.02); in each fold Yihao's model
   (``routing.classifier.train``, exactly what ``yihao train`` runs) is trained on the other
   folds, and so is a plain baseline (TF-IDF of jieba words + linear SVM, raw text). The
   unlabelled files shape only the vocabulary and IDF of Yihao's vectorizers — no held-out
   label is seen. The cold-start classifier (the taxonomy's own keywords, no training) is
   scored too. Dataset labels map to Yihao's level-1 categories by name. The headline figures
   are means over every fold of every seed; each seed's own figures are printed and kept.
2. **latency**: every held-out ticket classified one at a time (``CategoryModel.guess``:
   normalisation, segmentation, features, calibrated probabilities, explanation, similar
   tickets) on one core; p50 and p99. **Training time** per fold.
3. **duplicates**: precision and recall of ``routing.duplicates`` on hand-labelled pairs of
   ``messages_hot.csv`` (``bench/data/duplicate_pairs.csv``: ids and a 0/1 verdict only,
   no text). The data set has no coordinates, so every pair is taken as "same place" and only
   the text decides: the figures are for the text half of the rule.
4. **urgency**: how many messages of the labelled file (a message board: no live
   emergencies expected) the detector would hand to 110/119/120/122 — a false-alarm rate.

    OMP_NUM_THREADS=1 .venv/bin/python bench/routing.py              # seeds 0 1 2
    OMP_NUM_THREADS=1 .venv/bin/python bench/routing.py --seeds 3 4  # other shuffles
    .venv/bin/python bench/routing.py --train A.csv --eval B.csv --unlabeled C.csv --json out.json

Writes the raw numbers as JSON (``--json``, default bench/results/routing.json).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from routing import urgency  # noqa: E402
from routing.classifier import accuracy, keyword_guess, macro_f1, train  # noqa: E402
from routing.duplicates import TEXT_THRESHOLD, Fingerprint, is_duplicate, text_similarity  # noqa: E402
from routing.taxonomy import default_taxonomy  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "gov-messages"
PAIRS = Path(__file__).parent / "data" / "duplicate_pairs.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def label_code(name: str) -> str:
    """A data-set label → Yihao's level-1 code (by name); an unknown name stays itself."""
    cat = default_taxonomy().by_name(name.strip())
    return cat.code if cat is not None and cat.level == 1 else name.strip()


def baseline(train_texts: list[str], train_labels: list[str], test_texts: list[str]) -> list[str]:
    """The plain reference: TF-IDF of jieba words (raw text) + a linear SVM."""
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    jieba.setLogLevel(60)
    vec = TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False)
    X = vec.fit_transform(train_texts)
    return list(LinearSVC().fit(X, train_labels).predict(vec.transform(test_texts)))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def evaluate(train_rows: list[dict[str, str]], test_rows: list[dict[str, str]],
             unlabeled: list[tuple[str, str]], seed: int) -> dict[str, Any]:
    """Train Yihao's model and the baseline on ``train_rows``; score both on ``test_rows``."""
    items = [(r["title"], r["content"]) for r in train_rows]
    labels = [label_code(r["label"]) for r in train_rows]
    truth = [label_code(r["label"]) for r in test_rows]
    t0 = time.perf_counter()
    model = train(items, labels, unlabeled=unlabeled, seed=seed,
                  refs=[r.get("id", str(i)) for i, r in enumerate(train_rows)])
    train_s = time.perf_counter() - t0
    predicted: list[str] = []
    latencies: list[float] = []
    model.guess("预热", "预热")  # the first call builds the feature-name table once
    cpu: list[float] = []
    confidence: list[float] = []
    for r in test_rows:
        t, c = time.perf_counter(), time.thread_time()
        guess = model.guess(r["title"], r["content"])
        cpu.append((time.thread_time() - c) * 1000)
        latencies.append((time.perf_counter() - t) * 1000)
        predicted.append(guess.level1)
        confidence.append(guess.confidence)
    plain = baseline([f"{r['title']}。{r['content']}" for r in train_rows],
                     [label_code(r["label"]) for r in train_rows],
                     [f"{r['title']}。{r['content']}" for r in test_rows])
    keywords = [keyword_guess(r["title"], r["content"]).level1 for r in test_rows]
    return {"truth": truth, "yihao": predicted, "baseline": plain, "keywords": keywords,
            "latency_ms": latencies, "cpu_ms": cpu, "train_s": train_s,
            "confidence": confidence}


def stratified_folds(labels: list[str], k: int, seed: int) -> list[list[int]]:
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [list(test) for _, test in skf.split(np.zeros(len(labels)), labels)]


def duplicates_eval(messages: Path, pairs: Path) -> dict[str, Any] | None:
    if not pairs.exists() or not messages.exists():
        return None
    by_id = {r["id"]: r for r in read_rows(messages)}
    rows = [r for r in read_rows(pairs) if r["id_a"] in by_id and r["id_b"] in by_id]
    scored = []
    for r in rows:
        a, b = by_id[r["id_a"]], by_id[r["id_b"]]
        s = text_similarity(Fingerprint.of(a["title"], a["content"]),
                            Fingerprint.of(b["title"], b["content"]))
        scored.append((s, r["same"].strip() == "1"))

    def pr(threshold: float) -> dict[str, float]:
        tp = sum(1 for s, y in scored if y and is_duplicate(s, None, threshold=threshold,
                                                           same_place=True))
        fp = sum(1 for s, y in scored if not y and is_duplicate(s, None, threshold=threshold,
                                                               same_place=True))
        fn = sum(1 for s, y in scored if y and not is_duplicate(s, None, threshold=threshold,
                                                               same_place=True))
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        return {"threshold": threshold, "precision": round(p, 4), "recall": round(rc, 4),
                "f1": round(2 * p * rc / (p + rc), 4) if p + rc else 0.0}

    return {"pairs": len(scored), "positives": sum(1 for _, y in scored if y),
            "at_default": pr(TEXT_THRESHOLD),
            "sweep": [pr(t) for t in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train", type=Path, help="train on this CSV (labeled_train columns)")
    parser.add_argument("--eval", type=Path, help="…and report on this one")
    parser.add_argument("--unlabeled", type=Path, action="append", default=None,
                        help="unlabelled CSV (title, content) for the vocabulary; repeatable")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="shuffles of the folds (and model seeds); figures are averaged")
    parser.add_argument("--seed", type=int, help="one seed only (same as --seeds N)")
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" /
                        "routing.json")
    args = parser.parse_args(argv)

    labeled = args.train or args.data / "labeled_train.csv"
    if not labeled.exists():
        print(f"SKIP: {labeled} not found — the benchmark needs the gov-messages data set "
              "(../shared/datasets/gov-messages/ or --train/--eval)")
        return 0
    unlabeled_files = args.unlabeled if args.unlabeled is not None else [
        p for p in (args.data / "messages_hot.csv", args.data / "replies_dev.csv") if p.exists()]
    unlabeled = [(r.get("title", ""), r.get("content", ""))
                 for p in unlabeled_files for r in read_rows(p)]
    rows = read_rows(labeled)
    print(f"labelled: {labeled.name} ({len(rows)}), unlabelled texts: {len(unlabeled)} from "
          f"{', '.join(p.name for p in unlabeled_files) or 'none'}", flush=True)

    seeds = [args.seed] if args.seed is not None else list(dict.fromkeys(args.seeds))
    runs: list[dict[str, Any]] = []
    if args.eval:
        seeds = seeds[:1]
        runs.append({**evaluate(rows, read_rows(args.eval), unlabeled, seeds[0]),
                     "seed": seeds[0]})
        protocol = f"train {labeled.name} → eval {args.eval.name}"
    else:
        labels = [label_code(r["label"]) for r in rows]
        for seed in seeds:
            for i, test in enumerate(stratified_folds(labels, args.folds, seed)):
                held = set(test)
                runs.append({**evaluate([r for j, r in enumerate(rows) if j not in held],
                                        [rows[j] for j in test], unlabeled, seed),
                             "seed": seed})
                r = runs[-1]
                print(f"  seed {seed} fold {i + 1}: macro-F1 "
                      f"{macro_f1(r['truth'], r['yihao']):.3f} (baseline "
                      f"{macro_f1(r['truth'], r['baseline']):.3f}), trained in "
                      f"{r['train_s']:.1f}s", flush=True)
        protocol = (f"stratified {args.folds}-fold CV on {labeled.name}, seed"
                    f"{'s' if len(seeds) > 1 else ''} {' '.join(map(str, seeds))}")

    def per_fold(key: str, fn: Any, some: list[dict[str, Any]] | None = None) -> list[float]:
        return [fn(r["truth"], r[key]) for r in (runs if some is None else some)]

    def mean(values: list[float]) -> float:
        return round(statistics.fmean(values), 4)

    def sd(values: list[float]) -> float:
        return round(statistics.stdev(values), 4) if len(values) > 1 else 0.0

    def seed_figures(seed: int) -> dict[str, Any]:
        some = [r for r in runs if r["seed"] == seed]
        lat = [v for r in some for v in r["latency_ms"]]
        return {"seed": seed,
                "macro_f1": mean(per_fold("yihao", macro_f1, some)),
                "macro_f1_sd": sd(per_fold("yihao", macro_f1, some)),
                "accuracy": mean(per_fold("yihao", accuracy, some)),
                "baseline_macro_f1": mean(per_fold("baseline", macro_f1, some)),
                "baseline_accuracy": mean(per_fold("baseline", accuracy, some)),
                "keywords_macro_f1": mean(per_fold("keywords", macro_f1, some)),
                "mean_confidence": round(statistics.fmean(
                    v for r in some for v in r["confidence"]), 4),
                "latency_ms_p50": round(percentile(lat, 50), 2),
                "latency_ms_p99": round(percentile(lat, 99), 2),
                "cpu_ms_p50": round(percentile([v for r in some for v in r["cpu_ms"]], 50), 2),
                "cpu_ms_p99": round(percentile([v for r in some for v in r["cpu_ms"]], 99), 2),
                "train_s_mean": round(statistics.fmean(r["train_s"] for r in some), 2)}

    by_seed = [seed_figures(seed) for seed in seeds]
    latencies = [v for r in runs for v in r["latency_ms"]]
    result: dict[str, Any] = {
        "protocol": protocol,
        "seeds": seeds,
        "macro_f1": mean(per_fold("yihao", macro_f1)),
        "macro_f1_sd": sd(per_fold("yihao", macro_f1)),
        # The spread that matters for "does a change help": between whole CV repetitions.
        "macro_f1_median_over_seeds": round(statistics.median(s["macro_f1"] for s in by_seed), 4),
        "macro_f1_min_over_seeds": min(s["macro_f1"] for s in by_seed),
        "accuracy": mean(per_fold("yihao", accuracy)),
        # Calibration at a glance: a calibrated model's mean confidence ≈ its accuracy.
        "mean_confidence": round(statistics.fmean(v for r in runs for v in r["confidence"]), 4),
        "baseline_macro_f1": mean(per_fold("baseline", macro_f1)),
        "baseline_accuracy": mean(per_fold("baseline", accuracy)),
        "keywords_macro_f1": mean(per_fold("keywords", macro_f1)),
        "keywords_accuracy": mean(per_fold("keywords", accuracy)),
        "latency_ms_p50": round(percentile(latencies, 50), 2),
        "latency_ms_p99": round(percentile(latencies, 99), 2),
        "cpu_ms_p50": round(percentile([v for r in runs for v in r["cpu_ms"]], 50), 2),
        "cpu_ms_p99": round(percentile([v for r in runs for v in r["cpu_ms"]], 99), 2),
        "load_average": round(os.getloadavg()[0], 2),
        "train_s_mean": round(statistics.fmean(r["train_s"] for r in runs), 2),
        "train_s_max": round(max(r["train_s"] for r in runs), 2),
        "per_seed": by_seed,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
    }
    alerts = [r for r in rows if urgency.assess(r["title"], r["content"]).is_emergency]
    result["urgency_emergency_rate"] = round(len(alerts) / len(rows), 4)
    result["urgency_emergency_titles"] = [r["title"] for r in alerts][:10]
    if (dup := duplicates_eval(args.data / "messages_hot.csv", args.pairs)) is not None:
        result["duplicates"] = dup

    print(f"\n{protocol}")
    if len(by_seed) > 1:
        for s in by_seed:
            print(f"  seed {s['seed']}: macro-F1 {s['macro_f1']:.3f} (± {s['macro_f1_sd']:.3f}), "
                  f"accuracy {s['accuracy']:.3f}; baseline {s['baseline_macro_f1']:.3f} / "
                  f"{s['baseline_accuracy']:.3f}; latency p50 {s['latency_ms_p50']} ms, p99 "
                  f"{s['latency_ms_p99']} ms (CPU {s['cpu_ms_p50']} / {s['cpu_ms_p99']} ms); "
                  f"training {s['train_s_mean']} s")
        print(f"  median over seeds {result['macro_f1_median_over_seeds']:.3f}, "
              f"lowest {result['macro_f1_min_over_seeds']:.3f}")
    print(f"{'':28}{'macro-F1':>10}{'accuracy':>10}")
    print(f"{'Yihao (model)':28}{result['macro_f1']:>10.3f}{result['accuracy']:>10.3f}"
          f"   (mean of {len(runs)} folds, ± {result['macro_f1_sd']:.3f}; mean confidence "
          f"{result['mean_confidence']:.3f})")
    print(f"{'baseline TF-IDF + SVM':28}{result['baseline_macro_f1']:>10.3f}"
          f"{result['baseline_accuracy']:>10.3f}")
    print(f"{'cold start (keywords only)':28}{result['keywords_macro_f1']:>10.3f}"
          f"{result['keywords_accuracy']:>10.3f}")
    print(f"latency per ticket p50 {result['latency_ms_p50']} ms, p99 {result['latency_ms_p99']}"
          f" ms wall-clock (CPU time of the thread: p50 {result['cpu_ms_p50']} ms, p99 "
          f"{result['cpu_ms_p99']} ms; load average {result['load_average']}); training "
          f"{result['train_s_mean']} s per model (max {result['train_s_max']} s)")
    print(f"urgency: {len(alerts)}/{len(rows)} labelled messages flagged as emergencies")
    if dup:
        d = dup["at_default"]
        print(f"duplicates ({dup['pairs']} hand-labelled pairs, {dup['positives']} same): "
              f"precision {d['precision']:.3f}, recall {d['recall']:.3f} at text threshold "
              f"{d['threshold']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
