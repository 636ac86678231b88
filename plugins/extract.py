"""Answers and values read off tool results the way a person skims them: the line about what the question asks,
then the part of that line the question does not already say.

A 135M model asked "what is the backup server called?" over ``The backup server is named orion.`` answers with
a date or an address from its training data; the sentence itself holds the answer, and the words it shares with
the question ("backup", "server", "called"/"named") say which sentence it is. This module does that reading
without the model: results are cut into facts (lines, sentences, ``key: value`` and ``key=value`` pairs, the
leaves of a JSON document), each fact is scored by the words (stemmed, with a few synonyms: "total" is a sum,
"largest" a max) it shares with the question, and the best fact gives the answer in the form the goal asks for:
its value when it is a ``key: value`` pair about the question, a number when a number is asked, the n-th item of a
list for "the first item", a file name for "which file is a Word document", else what is left of the fact when
the question's own words are taken out ("My cat is called Miso." → ``Miso``). None when no fact is about the
question: the caller asks the model then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from plugins.goals import PATH

__all__ = ["STOP", "content_stems", "extract_answer", "extract_number", "facts", "overlap", "stem"]

#: Words that say nothing about what a question or a fact is about.
STOP = frozenset(
    """a an the of in on at to for from by with about into over under and or but not no nor is are was were be been
    being am do does did has have had having it its it's this that these those there here what which who whom whose
    where when why how many much me my mine i you your we our they their them he she his her him please can could
    would should will shall may might must tell give show find get read take look use using say says said according
    file files folder document named called name names some any all each every one value number result answer
    then also just only than as so if else up out now""".split()
)
#: Words kept although common: they are what a question asks about.
_KEEP = frozenset({"name", "named", "called", "now", "first", "last", "number"})
#: Aggregation words and the statistic names tools write them with (both ways).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "total": ("sum",),
    "sum": ("total",),
    "average": ("mean", "avg"),
    "mean": ("average", "avg"),
    "largest": ("max", "maximum"),
    "biggest": ("max", "maximum"),
    "highest": ("max", "maximum"),
    "maximum": ("max",),
    "max": ("maximum", "largest"),
    "smallest": ("min", "minimum"),
    "lowest": ("min", "minimum"),
    "minimum": ("min",),
    "min": ("minimum", "smallest"),
    "called": ("named", "name"),
    "named": ("called", "name"),
    "name": ("named", "called"),
    "now": ("current", "today"),
    "today": ("current", "date"),
    "year": ("date", "current"),
    "date": ("today",),
    "latest": ("last", "recent", "newest"),
    "newest": ("latest", "last"),
    "message": ("subject", "summary"),
    "how": (),
}
#: Words for kinds of file, and the extensions that make a file one.
_KINDS: dict[str, tuple[str, ...]] = {
    "word": ("docx", "doc", "odt"),
    "spreadsheet": ("xlsx", "xls", "csv", "ods"),
    "excel": ("xlsx", "xls"),
    "csv": ("csv",),
    "pdf": ("pdf",),
    "image": ("png", "jpg", "jpeg", "gif", "webp", "svg"),
    "picture": ("png", "jpg", "jpeg", "gif", "webp"),
    "photo": ("png", "jpg", "jpeg", "heic"),
    "markdown": ("md",),
    "text": ("txt",),
    "presentation": ("pptx", "ppt", "odp"),
    "python": ("py",),
    "json": ("json",),
}
#: Roles of messages that record what an agent said or a tool returned earlier: not facts about the world.
_NOT_FACTS = frozenset({"assistant", "tool", "system", "function"})
_COUNT_QUESTION = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b", re.I)
_COUNT_FACT = re.compile(
    r"^(?:rows|count|items|entries|lines|records|total)\b|\b\d+ (?:rows|items|entries|lines|records)\b", re.I
)
_EARLIEST = re.compile(r"\b(?:first|oldest|earliest|initial)\b", re.I)
_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}
_WORD = re.compile(r"[A-Za-z][A-Za-z'_-]*|\d+(?:[.:]\d+)*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]\d)")
_KEY_VALUE = re.compile(r"^\s*([A-Za-z][\w .'/-]{0,40}?)\s*[:=]\s+(\S.*)$")
_PAIRS = re.compile(r"([A-Za-z_][\w.-]*)=(\S+)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+(.+)$")
_FILE_NAME = re.compile(r"[\w.-]+\.([A-Za-z0-9]{1,5})\b")
_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "st", "prof", "jr", "sr", "vs", "etc", "no", "inc", "ltd", "co"})
#: What a question asks for by its words, and how such a value is written: "what time" is ``HH:MM``.
_VALUE_KINDS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"\bwhat year\b|\bwhich year\b|\byear\b", re.I), re.compile(r"\b(?:19|20)\d{2}\b")),
    (re.compile(r"\bwhat time\b|\btime\b|\bwhen\b|\bhour\b", re.I), re.compile(r"(?<![\d:+-])\d{1,2}:\d{2}(?!\d)")),
    (re.compile(r"\bwhat date\b|\bdate\b|\bwhich day\b", re.I), re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")),
)


def stem(word: str) -> str:
    """A crude stem, enough to match "lives" with "live" and "owner" with "owns"."""
    w = word.lower().strip("'-_")
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith("es"):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    for suffix in ("ing", "ed", "er"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def _words(text: str) -> list[str]:
    return _WORD.findall(PATH.sub(" ", text))


def content_stems(text: str, *, synonyms: bool = True) -> set[str]:
    """The stems of ``text``'s content words (paths and stop words left out), with their synonyms' stems."""
    out: set[str] = set()
    for word in _words(text):
        low = word.lower()
        if low in STOP and low not in _KEEP:
            continue
        out.add(stem(low))
        if synonyms:
            out.update(stem(s) for s in _SYNONYMS.get(low, ()))
    return out


def overlap(question: str, text: str) -> int:
    """How many of the question's content stems ``text`` shares."""
    return len(content_stems(question) & content_stems(text, synonyms=False))


def _json_facts(value: Any, key: str = "") -> list[str]:
    if isinstance(value, dict):
        if str(value.get("role", "")).lower() in _NOT_FACTS:
            return []  # a message the agent itself wrote (its transcript in recall memory), not a fact it was told
        out: list[str] = []
        for k, v in value.items():
            out.extend(_json_facts(v, f"{key}.{k}" if key else str(k)))
        return out
    if isinstance(value, list):
        return [fact for item in value for fact in _json_facts(item, key)]
    if value is None:
        return []
    text = str(value).strip()
    if not text:
        return []
    if " " in text and len(text) > 20:  # sentences stand on their own
        return [sentence for line in text.splitlines() for sentence in _sentences(line.strip()) if sentence]
    return [f"{key.rsplit('.', 1)[-1]}: {text}" if key else text]


def facts(text: str) -> list[str]:
    """``text`` cut into facts: JSON leaves, ``key=value`` pairs, lines, sentences (in order)."""
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return _json_facts(json.loads(stripped))
        except ValueError:
            pass
    out: list[str] = []
    lines = [raw for raw in text.splitlines() if raw.strip()]
    table = _table_start(lines)
    if table is not None:
        lines, rows = lines[:table], _table_facts(lines[table:])
    else:
        rows = []
    for raw in lines:
        line = raw.strip().strip("#").strip()
        if not line:
            continue
        pairs = _PAIRS.findall(line)
        if len(pairs) >= 2:
            out.extend(f"{k}: {v}" for k, v in pairs)
            continue
        bullet = _BULLET.match(line)
        if bullet:
            line = bullet.group(1)
        out.extend(_sentences(line))
    return out + rows


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split(",")]


def _table_start(lines: list[str]) -> int | None:
    """Where a comma-separated table (a header of names, then rows with as many cells) starts in ``lines``, if the
    text ends with one (``4 rows`` then the CSV, or the CSV alone)."""
    for start in range(len(lines) - 1):
        width = len(_cells(lines[start]))
        header = _cells(lines[start])
        if width < 2 or not all(re.fullmatch(r"[A-Za-z_][\w .-]*", h) for h in header):
            continue
        if all(len(_cells(line)) == width for line in lines[start + 1 :]):
            return start
    return None


def _table_facts(lines: list[str]) -> list[str]:
    """A table as facts: how many rows it has, then each row as ``name: value, ...``."""
    header, body = _cells(lines[0]), [_cells(line) for line in lines[1:]]
    return [f"rows: {len(body)}"] + [", ".join(f"{h}: {v}" for h, v in zip(header, row, strict=True)) for row in body]


def _sentences(line: str) -> list[str]:
    """``line`` cut at sentence ends, not after an abbreviation ("Dr. Okafor" stays whole)."""
    pieces = [p for p in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line) if p.strip()]
    out: list[str] = []
    for piece in pieces:
        if out and out[-1].rstrip(".").rsplit(" ", 1)[-1].lower() in _ABBREVIATIONS:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece.strip())
    return out


def _value_kind(question: str) -> re.Pattern[str] | None:
    """How the value the question asks for is written (a year, a time of day, a date), if its words say."""
    for asks, written in _VALUE_KINDS:
        if asks.search(question):
            return written
    return None


def _value_of_kind(question: str, fact: str) -> str | None:
    """The first value of the asked kind in ``fact`` that the question does not already give."""
    written = _value_kind(question)
    if written is None:
        return None
    given = set(written.findall(question))
    return next((v for v in written.findall(fact) if v not in given), None)


#: Words a request starts with: "Find my rent ..." recorded in recall is the task, not a fact about the rent.
_REQUEST_VERBS = frozenset(
    """find take read give tell show get look search compute calculate add subtract multiply divide convert list
    count summarise summarize write check open fetch use please""".split()
)


def _is_request(fact: str) -> bool:
    first = fact.strip().split(" ", 1)[0].lower().strip(".,:;!")
    return first in _REQUEST_VERBS


def _list_items(text: str) -> list[str]:
    return [m.group(1).strip() for line in text.splitlines() if (m := _BULLET.match(line))]


def _ordinal(question: str) -> int | None:
    low = question.lower()
    for word, index in _ORDINALS.items():
        if re.search(rf"\b{word}\s+(?:\w+\s+)?(?:item|entry|line|task|thing|point|bullet|element)\b", low):
            return index
    return None


def _kind_extensions(question: str) -> tuple[str, ...]:
    low = question.lower()
    found: list[str] = []
    for word, extensions in _KINDS.items():
        if re.search(rf"\b{word}s?\b", low):
            found.extend(extensions)
    return tuple(found)


def _remainder(question: str, fact: str) -> str:
    """What is left of ``fact`` with the question's own words and stop words taken out: the run of words next to
    the word the question asks for ("On which *street* is my dentist?" over "... Dr. Okafor, on Baker Street": Baker),
    else the first run."""
    asked = content_stems(question)
    head = _head(question)
    runs: list[tuple[int, list[str]]] = [(0, [])]
    head_at: int | None = None
    for index, token in enumerate(fact.split()):
        bare = token.strip(".,;:!?()\"'")
        low = bare.lower()
        if head_at is None and bare and stem(low) in head:
            head_at = index
        if not bare or low in STOP or stem(low) in asked or low in asked:
            if runs[-1][1]:
                runs.append((index + 1, []))
            continue
        if not runs[-1][1]:
            runs[-1] = (index, [])
        runs[-1][1].append(token.strip(",;:!?()\"'"))
        if token.endswith((",", ";")):  # a comma ends the run: "Dr. Okafor, on Baker Street"
            runs.append((index + 1, []))
    kept = [(start, " ".join(words).rstrip(".")) for start, words in runs if words]
    if not kept:
        return ""
    if head_at is not None:
        # The run ending right before the head word or starting right after it.
        near = min(kept, key=lambda r: min(abs(head_at - (r[0] + len(r[1].split()))), abs(r[0] - head_at - 1)))
        return near[1]
    return kept[0][1]


def _head(question: str) -> set[str]:
    """The stems of the question's first content word (what it asks for: "the *message* of the latest commit")."""
    for word in _words(question):
        low = word.lower()
        if low not in STOP or low in _KEEP:
            return {stem(low), *(stem(s) for s in _SYNONYMS.get(low, ()))}
    return set()


def _scored(question: str, texts: Iterable[str]) -> list[tuple[int, int, str]]:
    """(score, -order, fact) for every fact of ``texts`` that shares a word with the question, best first (ties:
    the latest result's, then the fact said first): a key
    naming what is asked counts twice, a key naming the question's head word ("message", "author") once more."""
    asked = content_stems(question)
    specific = {stem(w.lower()) for w in _words(question) if w.lower() not in STOP} - {stem(w) for w in _KEEP}
    head = _head(question)
    counting = bool(_COUNT_QUESTION.search(question))
    earliest = bool(_EARLIEST.search(question))
    rows: list[tuple[int, int, str]] = []
    order = 0
    for text in reversed(list(texts)):  # the latest result first; within one, its facts in order
        found = facts(text)
        dates = re.findall(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)", text)
        if earliest and len(set(dates)) > 1 and dates == sorted(dates, reverse=True):
            found = found[::-1]  # newest first (a log): the first one is said last
        for fact in found:
            if fact.rstrip().endswith("?") or _is_request(fact):
                order += 1
                continue  # a question or a request made earlier (the task itself, in recall) is no answer
            key_value = _KEY_VALUE.match(fact)
            key = content_stems(key_value.group(1), synonyms=False) if key_value else set()
            said = content_stems(fact, synonyms=False)
            # A word of the question itself counts twice, a synonym or a generic word ("name", "called") once.
            hits = 2 * len(specific & said) + len((asked - specific) & said)
            score = hits + len(asked & key) + (2 if head & key else 0) + (6 if _value_of_kind(question, fact) else 0)
            if counting and _COUNT_FACT.search(fact):
                score += 3  # "how many": the count a result states ("4 rows", "count: 4")
            if score:
                rows.append((score, -order, fact))
            order += 1
    rows.sort(reverse=True)
    return rows


def extract_number(question: str, texts: Iterable[str]) -> float | None:
    """The one number the facts most about ``question`` hold; None when there is none or no fact is about it."""
    for _score, _order, fact in _scored(question, texts):
        kind = _value_of_kind(question, fact)
        if kind is not None and re.fullmatch(r"\d+", kind):
            return float(kind)  # "what year": the year, not the other numbers of a date
        key_value = _KEY_VALUE.match(fact)
        value = key_value.group(2) if key_value else fact
        numbers = _NUMBER.findall(value)
        if len(numbers) == 1:
            return float(numbers[0])
        if numbers:
            return None  # the best fact holds several: which one is for the model to say
    return None


def extract_answer(question: str, texts: list[str], form: str = "text") -> str | None:
    """The answer to ``question`` read off ``texts`` (tool results, most recent last) in ``form`` (``number``,
    ``text``, ``path``, ``yes_no``); None when the results hold no fact about the question."""
    if form == "yes_no":
        return None  # a judgement, not a value to copy
    texts = [t for t in texts if t.strip()]
    if not texts:
        return None
    index = _ordinal(question)
    if index is not None:
        for text in reversed(texts):
            items = _list_items(text)
            if items and -len(items) <= index < len(items):
                return items[index]
    extensions = _kind_extensions(question)
    if extensions and form in ("path", "text"):
        for text in reversed(texts):
            names = [m.group(0) for m in _FILE_NAME.finditer(text) if m.group(1).lower() in extensions]
            if names:
                return ", ".join(dict.fromkeys(names))
    if form == "number":
        found = extract_number(question, texts)
        return None if found is None else (str(int(found)) if found.is_integer() else str(found))
    for _score, _order, fact in _scored(question, texts):
        kind = _value_of_kind(question, fact)
        if kind is not None:
            return kind
        key_value = _KEY_VALUE.match(fact)
        if key_value and content_stems(question) & content_stems(key_value.group(1), synonyms=False):
            return key_value.group(2).strip().strip("'\"").strip()
        rest = _remainder(question, fact)
        if rest:
            return rest
    return None
