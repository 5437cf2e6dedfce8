"""Which category: a calibrated linear SVM and a naive Bayes model over Chinese character and
word n-grams, with the taxonomy's keywords as a prior — and, before any history exists, the
keywords alone.

Why this shape: hotline history is small per category (hundreds, not millions), texts are
short and full of place names; on such data character 1–3-gram TF-IDF plus jieba words with
a class-balanced linear SVM is as good as anything that fits in 10 ms on one core, and its
weights explain themselves (the words that pushed the decision). The keyword scores of each
level-1 category enter as extra features, so the taxonomy's words still count when history
is thin.

Beside the SVM sits a complement naive Bayes model over the same rows' *word* columns (text
and title). The two err differently — the SVM leans on character fragments and the keyword
prior and fits the few examples of a small class tightly; naive Bayes pools evidence from
every word of the class and is steadier with ~30 examples a class — so their averaged
probabilities beat either alone (level-1 macro-F1 +0.017 on the message-board benchmark,
mean of ten fold seeds, better on every one). Each model is Platt-calibrated on
cross-validated scores; one-vs-rest sigmoids renormalised over seven classes come out timid,
so the average is then sharpened by a single temperature fitted (maximum likelihood) on the
same cross-validated scores: a confidence staff can read as a probability.

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
#: Additive smoothing of the naive Bayes word model. Its inputs are TF-IDF rows of unit length
#: (a word weighs 0.05–0.3), so a class sees only tens of units of mass in all; the textbook
#: alpha of 1 per word over tens of thousands of words would drown that, 0.1 keeps the prior a
#: nudge (0.03–0.3 all score alike on the benchmark).
NB_ALPHA = 0.1
#: Share of the naive Bayes model in the averaged probabilities: the two models count equally.
NB_WEIGHT = 0.5
#: Fewest labelled examples for which the sharpening temperature is estimated (below, 1).
MIN_FOR_TEMPERATURE = 30

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
                 ref_codes: list[str] | None = None, nb: Any = None,
                 temperature: float = 1.0) -> None:
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
        #: The calibrated complement naive Bayes over the word columns, and its numbers taken
        #: out for the accept path (log-weights, Platt a, Platt b). None in files written
        #: before it existed: those predict with the SVM alone, as they were trained.
        self.nb = nb
        self.nb_platt: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.temperature = temperature
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

    def _word_ranges(self) -> list[tuple[int, int]]:
        """Column ranges of the two word blocks (text words, title words) in a feature row."""
        n_char, n_word = len(self.vec_char.vocabulary_), len(self.vec_word.vocabulary_)
        start_title_word = n_char + n_word + len(self.vec_title.vocabulary_)
        return [(n_char, n_char + n_word),
                (start_title_word, start_title_word + len(self.vec_title_word.vocabulary_))]

    def word_columns(self, X: Any) -> Any:
        """The word-block columns of feature rows ``X``: what the naive Bayes model reads."""
        from scipy.sparse import hstack

        return hstack([X[:, a:b] for a, b in self._word_ranges()]).tocsr()

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
        """Class probabilities of ``docs`` through scikit-learn (training, evaluation)."""
        return self.proba_of_rows(self.features(docs))

    def proba_of_rows(self, X: Any) -> np.ndarray:
        """Class probabilities of ready feature rows through scikit-learn: the SVM's, averaged
        with the naive Bayes model's where the model has one (files written before it have
        not), then sharpened."""
        p = self.clf.predict_proba(X)
        nb = getattr(self, "nb", None)
        if nb is None:
            return p
        return combine(p, nb.predict_proba(self.word_columns(X)),
                       getattr(self, "temperature", 1.0))

    def _proba_row(self, row: Any) -> np.ndarray:
        """Calibrated probabilities of one row: the fitted margins, naive Bayes log-weights
        and Platt sigmoids taken out of scikit-learn once (``platt``, ``nb_platt``), applied
        with plain numpy — the same numbers as ``proba``."""
        platt = getattr(self, "platt", None)
        if platt is None:
            return self.proba_of_rows(row)[0]
        coef, intercept, a, b = platt
        margins = np.asarray(row @ coef.T).ravel() + intercept
        p = _platt(margins[:1] if len(self.classes) == 2 else margins, a, b)
        nb_platt = getattr(self, "nb_platt", None)
        if nb_platt is None:
            return p
        log_weights, nb_a, nb_b = nb_platt
        # The row's word-block entries, renumbered as columns of the word-only matrix.
        cols, vals = row.indices, row.data
        keep_cols: list[np.ndarray] = []
        keep_vals: list[np.ndarray] = []
        shift = 0
        for lo, hi in self._word_ranges():
            inside = (cols >= lo) & (cols < hi)
            keep_cols.append(cols[inside] - lo + shift)
            keep_vals.append(vals[inside])
            shift += hi - lo
        idx, w = np.concatenate(keep_cols), np.concatenate(keep_vals)
        jll = log_weights[:, idx] @ w
        nb_p = np.exp(jll - jll.max())
        nb_p /= nb_p.sum()
        q = _platt(nb_p[1:] if len(self.classes) == 2 else nb_p, nb_a, nb_b)
        return combine(p[None, :], q[None, :], getattr(self, "temperature", 1.0))[0]

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


def _platt(scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Platt sigmoids of one row's scores, renormalised (as ``CalibratedClassifierCV`` does).
    Two classes: one score and one sigmoid, for the second class."""
    p = 1.0 / (1.0 + np.exp(a * scores + b))
    if len(p) == 1:
        return np.array([1.0 - p[0], p[0]])
    total = p.sum()
    return p / total if total > 0 else np.full(len(p), 1.0 / len(p))


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities raised to ``1 / temperature`` and renormalised per row (below 1:
    sharper). Monotone, so it never changes which class wins — only how sure it sounds."""
    if temperature == 1.0:
        return probs
    q = np.power(np.clip(probs, 1e-12, 1.0), 1.0 / temperature)
    return q / q.sum(axis=1, keepdims=True)


def combine(p_svm: np.ndarray, p_nb: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The model's probabilities: the two calibrated models averaged, then sharpened."""
    return sharpen((1.0 - NB_WEIGHT) * p_svm + NB_WEIGHT * p_nb, temperature)


def fit_temperature(probs: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that maximises the likelihood of ``truth`` (column indices) under the
    sharpened ``probs`` — out-of-fold probabilities, so it measures how sure the model should
    be on tickets it has not seen. Kept within [0.3, 3] so a few lucky folds cannot make it
    certain."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(truth))

    def nll(t: float) -> float:
        return float(-np.log(sharpen(probs, t)[rows, truth]).mean())

    return round(float(minimize_scalar(nll, bounds=(0.3, 3.0), method="bounded").x), 4)


def train(items: Sequence[tuple[str, str]], labels: Sequence[str], *,
          unlabeled: Sequence[tuple[str, str]] = (), taxonomy: Taxonomy | None = None,
          refs: Sequence[str] | None = None, extra_words: Sequence[str] = (),
          seed: int = 0) -> CategoryModel:
    """Train a level-1 model from ``items`` (raw title, raw content) and their level-1 codes.
    ``unlabeled`` items only shape the vocabulary and IDF (no labels, so no leak of any
    held-out label); ``refs`` name the examples for "similar past tickets"."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.naive_bayes import ComplementNB
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
        # Every word, even one seen once: the ticket being routed is never in this corpus, so
        # a minimum count of 2 would drop exactly the rare, specific words (a school's or a
        # company's name) that tie it to the one past ticket about the same thing — and the
        # naive Bayes half lives on those (+0.008 macro-F1 over ten fold seeds). Words are
        # few (~42 000 in both word blocks) beside the character n-grams.
        return TfidfVectorizer(analyzer=str.split, sublinear_tf=True, min_df=1,
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
        # One explicit split for both calibrations and the out-of-fold scores below, so the
        # temperature is fitted on exactly the scores the sigmoids were fitted on.
        cv = StratifiedKFold(folds)
        clf = CalibratedClassifierCV(base, method="sigmoid", cv=cv, ensemble=False)
        clf.fit(X, y)
        fitted = clf.calibrated_classifiers_[0].estimator
        B = model.word_columns(X)
        nb = CalibratedClassifierCV(ComplementNB(alpha=NB_ALPHA), method="sigmoid", cv=cv,
                                    ensemble=False).fit(B, y)
        nb_cal = nb.calibrated_classifiers_[0]
        nb_fitted = nb_cal.estimator
        model.nb = nb
        model.nb_platt = (np.asarray(nb_fitted.feature_log_prob_),
                          np.array([c.a_ for c in nb_cal.calibrators]),
                          np.array([c.b_ for c in nb_cal.calibrators]))
        if len(y) >= MIN_FOR_TEMPERATURE:
            svm_scores = cross_val_predict(base, X, y, cv=cv, method="decision_function")
            nb_scores = cross_val_predict(ComplementNB(alpha=NB_ALPHA), B, y, cv=cv,
                                          method="predict_proba")
            oof = combine(_calibrate_rows(svm_scores, clf.calibrated_classifiers_[0]),
                          _calibrate_rows(nb_scores, nb_cal))
            model.temperature = fit_temperature(oof, np.searchsorted(clf.classes_, y))
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


def _calibrate_rows(scores: np.ndarray, calibrated: Any) -> np.ndarray:
    """Apply a fitted calibration (its Platt sigmoids) to raw scores of many rows: an SVM's
    margins, or naive Bayes probabilities (two classes: the second column only, as
    scikit-learn does)."""
    a = np.array([c.a_ for c in calibrated.calibrators])
    b = np.array([c.b_ for c in calibrated.calibrators])
    if scores.ndim == 1:
        scores = scores[:, None]
    elif len(a) == 1:
        scores = scores[:, -1:]
    return np.vstack([_platt(row, a, b) for row in scores])


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
