"""The one place Chinese ticket text is prepared: classifier, duplicates, urgency and the
benchmark all read text through here, so they agree on what a word is.

- :func:`normalize` folds full-width forms (ＡＢＣ１２３，) to half-width (NFKC), lower-cases
  Latin letters, folds whitespace and *masks numbers*: a phone number or an ID number must
  never become a model feature (personal data, and useless for routing), and "3号楼" and
  "5号楼" are the same kind of thing.
- :func:`words` segments with jieba, using a user dictionary of domain terms (the taxonomy's
  keywords) and place names (units, grids, gazetteer entries) so "浑河湾社区" or "拖欠工资"
  stay one word.

jieba loads its dictionary lazily (about a second, once per process); after that a ticket
costs well under a millisecond here.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable

import jieba

jieba.setLogLevel(60)

PHONE = "Ⓟ"  # a phone number
IDNO = "Ⓘ"  # an ID card number
NUM = "Ⓝ"  # any other number

_PHONE_RE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")
_ID_RE = re.compile(r"(?<!\d)\d{17}[\dx](?!\d)", re.IGNORECASE)
_NUM_RE = re.compile(r"\d+(?:\.\d+)?")
_SPACE_RE = re.compile(r"\s+")
#: Tokens that carry no meaning for routing: punctuation, symbols, lone masks.
_SKIP_RE = re.compile(r"^[\W_]+$")

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None
_user_words: set[str] = set()


def normalize(text: str) -> str:
    """Full-width → half-width, lower case, one space between runs, numbers masked."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = _SPACE_RE.sub(" ", text).strip()
    text = _ID_RE.sub(IDNO, text)
    text = _PHONE_RE.sub(PHONE, text)
    return _NUM_RE.sub(NUM, text)


def _get_tokenizer() -> jieba.Tokenizer:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                for word in sorted(_user_words):
                    tokenizer.add_word(word, freq=max(2000, 500 * len(word)))
                _tokenizer = tokenizer
    return _tokenizer


def add_words(words: Iterable[str]) -> int:
    """Add domain terms or place names to the user dictionary; returns how many were new.

    Place names are normalised the same way as the text they will be found in.
    """
    new = {normalize(w) for w in words if w and len(w.strip()) >= 2} - _user_words
    if not new:
        return 0
    with _lock:
        _user_words.update(new)
        if _tokenizer is not None:
            for word in new:
                _tokenizer.add_word(word, freq=max(2000, 500 * len(word)))
    return len(new)


def user_words() -> frozenset[str]:
    return frozenset(_user_words)


def words(text: str, *, normalized: bool = False) -> list[str]:
    """Segmented words of ``text`` (normalised first unless ``normalized``), without
    punctuation and whitespace."""
    if not normalized:
        text = normalize(text)
    # No HMM guessing of unknown words: three times faster, and the user dictionary plus
    # the character n-grams already cover what it would find.
    return [w for w in _get_tokenizer().lcut(text, HMM=False) if w.strip()
            and not _SKIP_RE.match(w)]


def joined_words(text: str, *, normalized: bool = False) -> str:
    """Words separated by single spaces: what the word vectorizer reads."""
    return " ".join(words(text, normalized=normalized))


#: What the classifier reads of the content: what a ticket is about is said at its start,
#: and the rest of a long letter costs segmentation time on the accept path for little gain.
CONTENT_CHARS = 600


def ticket_text(title: str | None, content: str | None) -> str:
    """Title and content (its first ``CONTENT_CHARS``) as one text; the title is repeated
    because it is the caller's own summary and weighs more than any sentence of the content."""
    title = (title or "").strip()
    content = (content or "").strip()[:CONTENT_CHARS]
    return f"{title}。{title}。{content}" if title else content


def char_shingles(text: str, n: int = 2) -> set[str]:
    """Character n-grams of the normalised text without spaces or punctuation: the
    duplicate detector compares these (robust to segmentation differences)."""
    cleaned = "".join(ch for ch in normalize(text) if ch.isalnum() or ch in (PHONE, IDNO, NUM))
    if len(cleaned) < n:
        return {cleaned} if cleaned else set()
    return {cleaned[i:i + n] for i in range(len(cleaned) - n + 1)}
