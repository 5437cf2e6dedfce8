"""Which category: a calibrated linear model over Chinese character and word n-grams, with
the taxonomy's keywords as a prior — and, before any history exists, the keywords alone.

Why this shape: hotline history is small per category (hundreds, not millions), texts are
short and full of place names; on such data character 1–3-gram TF-IDF plus jieba words with
a class-balanced linear SVM is as good as anything that fits in 10 ms on one core, and its
weights explain themselves (the words that pushed the decision). Platt scaling on
cross-validated scores turns the SVM margin into a probability staff can read as
confidence. The keyword scores of each level-1 category enter as extra features, so the
taxonomy's words still count when history is thin.

Level 1 is always decided by the model; levels 2 and 3 are chosen only when the keywords of
one sub-category clearly win inside the chosen level 1 (deeper when confident).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import text as tx
from .taxonomy import Taxonomy, default_taxonomy

#: Version of the pickled model's layout; a file of another format is never loaded.
MODEL_FORMAT = 1
KEYWORD_FEATURE_WEIGHT = 0.5
#: Softmax temperature of the keyword scores: chosen so that, on message-board data, the mean
#: confidence of the cold-start classifier matches its accuracy (about 0.74) — a confidence
#: staff can read as a probability, not a score.
KEYWORD_TEMPERATURE = 0.45

#: One text as the model reads it: (normalised title, normalised title-and-content).
Doc = tuple[str, str]


def to_doc(title: str | None, content: str | None) -> Doc:
    return tx.normalize(title or ""), tx.normalize(tx.ticket_text(title, content))


@dataclass
class Guess:
    """What the classifier says about one ticket."""

    code: str
    level1: str
    confidence: float
    route: str
    words: list[str] = field(default_factory=list)
    similar: list[dict[str, Any]] = field(default_factory=list)
    source: str = "keywords"
    model_version: int | None = None
    alternatives: list[dict[str, Any]] = field(default_factory=list)

    def explanation(self) -> dict[str, Any]:
        """What the ticket stores and shows: why this category."""
        return {"source": self.source, "model_version": self.model_version,
                "words": self.words[:8], "similar": self.similar[:3],
                "alternatives": self.alternatives[:2]}


class KeywordScorer:
    """Scores level-1 categories by the weighted keywords of their subtree found in the text.

    Works with no history at all; its scores are also features of the trained model.
    """

    def __init__(self, taxonomy: Taxonomy, level1_codes: Sequence[str] | None = None) -> None:
        self.taxonomy = taxonomy
        self.codes = list(level1_codes or [c.code for c in taxonomy.level1()])
        self.weights = [taxonomy.subtree_keywords(code) for code in self.codes]

    def scores(self, normalized: str) -> np.ndarray:
        return np.array([
            sum(w * min(normalized.count(k), 3) for k, w in weights.items() if k in normalized)
            for weights in self.weights
        ], dtype=float)

    def features(self, normalized_texts: Sequence[str]) -> Any:
        from scipy.sparse import csr_matrix

        raw = np.log1p(np.array([self.scores(t) for t in normalized_texts]).reshape(
            len(normalized_texts), len(self.codes)))
        norms = np.linalg.norm(raw, axis=1, keepdims=True) + 1e-9
        return csr_matrix(raw / norms * KEYWORD_FEATURE_WEIGHT)

    def matched(self, normalized: str, code: str) -> list[str]:
        """The category's (subtree's) keywords found in the text, strongest first."""
        weights = self.taxonomy.subtree_keywords(code)
        found = [k for k in weights if k in normalized]
        return sorted(found, key=lambda k: (-weights[k], k))

    def deeper(self, normalized: str, code: str) -> str:
        """Walk down from ``code`` while one child's own keywords clearly win."""
        while True:
            children = self.taxonomy.children.get(code, [])
            if not children:
                return code
            scored = sorted(
                ((sum(min(normalized.count(k), 3) * min(len(k), 4) / 2
                      for k in self.taxonomy.subtree_keywords(child) if k in normalized), child)
                 for child in children), reverse=True)
            best, second = scored[0][0], (scored[1][0] if len(scored) > 1 else 0.0)
            if best < 1.5 or best < 1.5 * second:
                return code
            code = scored[0][1]


def _softmax(values: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = values / temperature
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


_scorers: dict[int, KeywordScorer] = {}


def _scorer_for(taxonomy: Taxonomy) -> KeywordScorer:
    """One scorer per taxonomy object (the shipped one lives as long as the process)."""
    scorer = _scorers.get(id(taxonomy))
    if scorer is None or scorer.taxonomy is not taxonomy:
        scorer = _scorers[id(taxonomy)] = KeywordScorer(taxonomy)
    return scorer


def keyword_guess(title: str, content: str, taxonomy: Taxonomy | None = None) -> Guess:
    """The cold-start classifier: the taxonomy's own words, no history."""
    taxonomy = taxonomy or default_taxonomy()
    scorer = _scorer_for(taxonomy)
    normalized = tx.normalize(tx.ticket_text(title, content))
    scores = scorer.scores(normalized)
    if scores.max() <= 0:
        # Nothing recognised: the broadest bucket with an honest, low confidence.
        code = scorer.codes[0]
        probs = np.full(len(scorer.codes), 1 / len(scorer.codes))
    else:
        probs = _softmax(np.log1p(scores), temperature=KEYWORD_TEMPERATURE)
        code = scorer.codes[int(scores.argmax())]
    deep = scorer.deeper(normalized, code)
    order = np.argsort(-probs)
    cat = taxonomy.get(deep)
    assert cat is not None
    return Guess(
        code=deep, level1=code, confidence=round(float(probs.max()), 3), route=cat.route,
        words=scorer.matched(normalized, deep)[:8] or scorer.matched(normalized, code)[:8],
        source="keywords",
        alternatives=[{"code": scorer.codes[i], "confidence": round(float(probs[i]), 3)}
                      for i in order[1:3] if probs[i] > 0.05],
    )


class CategoryModel:
    """A trained level-1 model, pickled to a file; everything it needs to predict is inside
    (vectorizers, user dictionary, keyword table, neighbours for "similar past tickets")."""

    format = MODEL_FORMAT

    def __init__(self, *, classes: list[str], vec_char: Any, vec_word: Any, vec_title: Any,
                 vec_title_word: Any, clf: Any,
                 coef: np.ndarray, scorer: KeywordScorer, user_words: list[str],
                 neighbours: Any = None, refs: list[str] | None = None,
                 ref_codes: list[str] | None = None) -> None:
        self.classes = classes
        self.vec_char = vec_char
        self.vec_word = vec_word
        self.vec_title = vec_title
        self.vec_title_word = vec_title_word
        self.clf = clf
        self.coef = coef
        self.scorer = scorer
        self.user_words = user_words
        self.neighbours = neighbours
        self.refs = refs or []
        self.ref_codes = ref_codes or []
        self.version: int | None = None
        self.platt: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._feature_names: np.ndarray | None = None

    # -- features

    def features(self, docs: Sequence[Doc]) -> Any:
        """Feature rows of ``docs`` (normalised title, normalised title-and-content): character
        and word TF-IDF of the whole text, the same of the title alone (a caller's summary
        says most), and the keyword scores."""
        from scipy.sparse import hstack

        if len(docs) == 1:
            return self._one_row(docs[0])
        texts = [d[1] for d in docs]
        titles = [d[0] for d in docs]
        return hstack([
            self.vec_char.transform(texts),
            self.vec_word.transform([tx.joined_words(t, normalized=True) for t in texts]),
            self.vec_title.transform(titles),
            self.vec_title_word.transform([tx.joined_words(t, normalized=True) for t in titles]),
            self.scorer.features(texts)]).tocsr()

    def _one_row(self, doc: Doc) -> Any:
        """The features of one text without scikit-learn's per-call validation: the same
        numbers as ``features`` (sublinear TF × IDF, L2 per block), a fraction of the time —
        this is the accept path."""
        from scipy.sparse import csr_matrix

        title, text = doc
        cols: list[int] = []
        vals: list[float] = []
        offset = 0
        for vec, tokens in (
            (self.vec_char, self._analyzer("vec_char")(text)),
            (self.vec_word, tx.words(text, normalized=True)),
            (self.vec_title, self._analyzer("vec_title")(title)),
            (self.vec_title_word, tx.words(title, normalized=True)),
        ):
            counts: dict[int, int] = {}
            vocab = vec.vocabulary_
            for tok in tokens:
                j = vocab.get(tok)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if counts:
                idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
                w = tf * vec.idf_[idx]
                w /= np.sqrt((w * w).sum()) or 1.0
                cols.extend((idx + offset).tolist())
                vals.extend(w.tolist())
            offset += len(vocab)
        kw = self.scorer.features([text]).toarray().ravel()
        for k, v in enumerate(kw):
            if v:
                cols.append(offset + k)
                vals.append(float(v))
        width = offset + len(kw)
        return csr_matrix((np.array(vals, dtype=np.float64), np.array(cols, dtype=np.int64),
                           np.array([0, len(cols)])), shape=(1, width))

    def _analyzer(self, name: str) -> Any:
        cache = self.__dict__.setdefault("_analyzers", {})
        if name not in cache:
            cache[name] = getattr(self, name).build_analyzer()
        return cache[name]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for transient in ("_analyzers", "_words_added"):
            state.pop(transient, None)
        state["_feature_names"] = None
        return state

    def _names(self) -> np.ndarray:
        if self._feature_names is None:
            names = [*("c:" + n for n in self.vec_char.get_feature_names_out()),
                     *("w:" + n for n in self.vec_word.get_feature_names_out()),
                     *("t:" + n for n in self.vec_title.get_feature_names_out()),
                     *("w:" + n for n in self.vec_title_word.get_feature_names_out()),
                     *("k:" + c for c in self.scorer.codes)]
            self._feature_names = np.array(names, dtype=object)
        return self._feature_names

    # -- prediction

    def proba(self, docs: Sequence[Doc]) -> np.ndarray:
        return self.clf.predict_proba(self.features(docs))

    def _proba_row(self, row: Any) -> np.ndarray:
        """Calibrated probabilities of one row: the fitted margins and Platt sigmoids taken
        out of scikit-learn once (``platt``), applied with plain numpy."""
        platt = getattr(self, "platt", None)
        if platt is None:
            return self.clf.predict_proba(row)[0]
        coef, intercept, a, b = platt
        margins = np.asarray(row @ coef.T).ravel() + intercept
        if len(self.classes) == 2:
            p1 = 1.0 / (1.0 + np.exp(a[0] * margins[0] + b[0]))
            return np.array([1.0 - p1, p1])
        p = 1.0 / (1.0 + np.exp(a * margins + b))
        total = p.sum()
        return p / total if total > 0 else np.full(len(p), 1.0 / len(p))

    def predict_codes(self, docs: Sequence[Doc]) -> list[str]:
        probs = self.proba(docs)
        return [self.classes[i] for i in probs.argmax(axis=1)]

    def guess(self, title: str, content: str, taxonomy: Taxonomy | None = None) -> Guess:
        taxonomy = taxonomy or default_taxonomy()
        if not self.__dict__.get("_words_added"):
            tx.add_words(self.user_words)
            self.__dict__["_words_added"] = True
        doc = to_doc(title, content)
        normalized = doc[1]
        row = self.features([doc])
        probs = self._proba_row(row)
        best = int(probs.argmax())
        code = self.classes[best]
        deep = self.scorer.deeper(normalized, code) if code in taxonomy.categories else code
        cat = taxonomy.get(deep)
        order = np.argsort(-probs)
        return Guess(
            code=deep, level1=code, confidence=round(float(probs[best]), 3),
            route=cat.route if cat else "grid", words=self._why(row, best),
            similar=self._similar(row), source="model", model_version=self.version,
            alternatives=[{"code": self.classes[i], "confidence": round(float(probs[i]), 3)}
                          for i in order[1:3] if probs[i] > 0.05],
        )

    def _why(self, row: Any, klass: int) -> list[str]:
        """Words (not character fragments) that pushed the decision most, plus the
        category's keywords that were present."""
        contrib = row.multiply(self.coef[klass]).tocsr()
        idx, vals = contrib.indices, contrib.data
        names = self._names()
        words: list[str] = []
        for j in np.argsort(-vals):
            if vals[j] <= 0:
                break
            name = str(names[idx[j]])
            whole_word = name.startswith("w:") and len(name) > 3
            long_chars = name[:2] in ("c:", "t:") and len(name) >= 4 and " " not in name
            if whole_word or long_chars:
                words.append(name[2:])
            if len(words) >= 8:
                break
        return list(dict.fromkeys(w for w in words if not any(m in w for m in
                                                              (tx.NUM, tx.PHONE, tx.IDNO))))

    def _similar(self, row: Any, k: int = 3) -> list[dict[str, Any]]:
        if self.neighbours is None or not self.refs:
            return []
        n_text = len(self.vec_char.vocabulary_) + len(self.vec_word.vocabulary_)
        keep = row.indices < n_text
        cols, vals = row.indices[keep], row.data[keep]
        # Column slices of the (CSC) neighbour matrix: only the features this text has.
        sims = np.asarray(self.neighbours[:, cols] @ vals).ravel()
        out = []
        for i in np.argsort(-sims)[:k]:
            if sims[i] < 0.2:
                break
            out.append({"ticket": self.refs[i], "code": self.ref_codes[i],
                        "similarity": round(float(sims[i]), 3)})
        return out


def train(items: Sequence[tuple[str, str]], labels: Sequence[str], *,
          unlabeled: Sequence[tuple[str, str]] = (), taxonomy: Taxonomy | None = None,
          refs: Sequence[str] | None = None, extra_words: Sequence[str] = (),
          seed: int = 0) -> CategoryModel:
    """Train a level-1 model from ``items`` (raw title, raw content) and their level-1 codes.
    ``unlabeled`` items only shape the vocabulary and IDF (no labels, so no leak of any
    held-out label); ``refs`` name the examples for "similar past tickets"."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize as l2
    from sklearn.svm import LinearSVC

    taxonomy = taxonomy or default_taxonomy()
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError("training needs at least two categories with examples")
    words = sorted({*taxonomy.all_keywords(), *extra_words})
    tx.add_words(words)
    docs = [to_doc(t, c) for t, c in items]
    corpus = docs + [to_doc(t, c) for t, c in unlabeled]
    min_df = 2 if len(corpus) >= 200 else 1

    def char_vec(**extra: Any) -> Any:
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True,
                               min_df=min_df, dtype=np.float32, **extra)

    def word_vec() -> Any:
        return TfidfVectorizer(analyzer=str.split, sublinear_tf=True, min_df=min_df,
                               dtype=np.float32)

    vec_char = char_vec(max_features=150_000).fit([d[1] for d in corpus])
    vec_word = word_vec().fit([tx.joined_words(d[1], normalized=True) for d in corpus])
    vec_title = char_vec().fit([d[0] for d in corpus])
    vec_title_word = word_vec().fit([tx.joined_words(d[0], normalized=True) for d in corpus])
    level1 = [c.code for c in taxonomy.level1()]
    scorer = KeywordScorer(taxonomy, [c for c in level1 if c in classes] or classes)
    model = CategoryModel(classes=classes, vec_char=vec_char, vec_word=vec_word,
                          vec_title=vec_title, vec_title_word=vec_title_word, clf=None,
                          coef=np.zeros(0), scorer=scorer, user_words=words)
    X = model.features(docs)
    y = np.array(labels)
    counts = {c: int((y == c).sum()) for c in classes}
    base = LinearSVC(C=1.0, class_weight="balanced", random_state=seed)
    folds = min(3, min(counts.values()))
    if folds >= 2:
        clf = CalibratedClassifierCV(base, method="sigmoid", cv=folds, ensemble=False)
        clf.fit(X, y)
        fitted = clf.calibrated_classifiers_[0].estimator
    else:
        clf = _SoftmaxSVC(base.fit(X, y))
        fitted = base
    coef = fitted.coef_ if fitted.coef_.shape[0] > 1 else np.vstack([-fitted.coef_, fitted.coef_])
    model.clf = clf
    model.coef = np.asarray(coef)
    if folds >= 2:
        calibrated = clf.calibrated_classifiers_[0]
        sig = calibrated.calibrators
        model.platt = (np.asarray(fitted.coef_), np.asarray(fitted.intercept_),
                       np.array([c.a_ for c in sig]), np.array([c.b_ for c in sig]))
    model.classes = [str(c) for c in clf.classes_]
    if refs is not None:
        n_text = len(vec_char.vocabulary_) + len(vec_word.vocabulary_)
        model.neighbours = l2(X[:, :n_text]).tocsc()
        model.refs = list(refs)
        model.ref_codes = list(labels)
    return model


class _SoftmaxSVC:
    """Probabilities from SVM margins where there is too little data to calibrate."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.classes_ = svc.classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        d = self.svc.decision_function(X)
        if d.ndim == 1:
            d = np.vstack([-d, d]).T
        return np.vstack([_softmax(r, temperature=0.5) for r in d])


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Macro-averaged F1 over the classes present in ``truth``."""
    from sklearn.metrics import f1_score

    return float(f1_score(list(truth), list(predicted), average="macro",
                          labels=sorted(set(truth)), zero_division=0))


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        return math.nan
    return sum(a == b for a, b in zip(truth, predicted, strict=True)) / len(truth)
