"""Word error rate after normalising, so "Mr. Quilter's 21" and "mister quilter's twenty-one" match.

normalize() maps spelling variants that are not recognition errors to one form:
    case, punctuation, hyphens       -> lower case words split on hyphens, punctuation removed
    titles ("Mr.", "Dr.", "St.")     -> spelled out ("mister", "doctor", "saint")
    numbers ("21", "3.5", "1st")     -> words ("twenty one", "three point five", "first")
    acronyms ("U.S.A.")              -> letters run together ("usa")
    apostrophes                      -> kept inside words ("neighbor's", "don't"), dropped at edges
wer() = (substitutions + deletions + insertions) / reference words, from a word-level Levenshtein
alignment of the normalised texts.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

import numpy as np

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_ENDINGS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                    "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}  # fmt: skip

# Whole-word abbreviations, with or without their full stop, and the spoken forms they share.
_TITLES = {
    "mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "prof": "professor",
    "jr": "junior", "sr": "senior", "capt": "captain", "lt": "lieutenant", "sgt": "sergeant",
    "gov": "governor", "vs": "versus",
}  # fmt: skip
_TITLE_RE = re.compile(r"\b(" + "|".join(_TITLES) + r")\b\.?")
_ACRONYM_RE = re.compile(r"\b(?:[a-z]\.){2,}")
_CURRENCY_RE = re.compile(r"([$£€])\s?(\d+(?:\.\d+)?)")
_CURRENCY_WORDS = {"$": "dollars", "£": "pounds", "€": "euros"}
_THOUSANDS_RE = re.compile(r"\b(\d{1,3})((?:,\d{3})+)\b")
_ORDINAL_RE = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_INTEGER_RE = re.compile(r"(?<![\w'])(\d+)(?![\w'])")  # digits standing alone, not "mp3"
_HUNDRED_AND_RE = re.compile(
    r"\b(hundred|thousand|million|billion) and (?=(?:" + "|".join(_ONES[1:] + _TENS[2:]) + r")\b)"
)
_A_HUNDRED_RE = re.compile(r"\ba (hundred|thousand|million|billion)\b")


def number_to_words(n: int) -> str:
    """Cardinal English words without "and": 105 -> "one hundred five"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return f"{number_to_words(head)} {name}" + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """21 -> "twenty first": only the last word of the cardinal changes."""
    *head, last = number_to_words(n).split()
    if last in _ORDINAL_ENDINGS:
        last = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _spell_digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _digits_to_words(digits: str) -> str:
    # "007" is read digit by digit; "2024" as a number.
    if len(digits) > 1 and digits.startswith("0"):
        return _spell_digits(digits)
    return number_to_words(int(digits))


def _decimal_to_words(match: re.Match[str]) -> str:
    # "3.14" -> "three point one four": digits after the point are read one by one.
    return f"{_digits_to_words(match.group(1))} point {_spell_digits(match.group(2))}"


def normalize(text: str) -> str:
    """Lower-case words separated by single spaces, with spelling variants mapped to one form."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[\u2018\u2019\u02bc`]", "'", text)  # curly and modifier apostrophes
    text = _ACRONYM_RE.sub(lambda m: m.group(0).replace(".", "") + " ", text)
    text = _TITLE_RE.sub(lambda m: _TITLES[m.group(1)], text)
    text = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    text = _CURRENCY_RE.sub(lambda m: f"{m.group(2)} {_CURRENCY_WORDS[m.group(1)]}", text)
    text = text.replace("%", " percent")
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _DECIMAL_RE.sub(_decimal_to_words, text)
    # Hyphens, dashes, slashes and all other punctuation separate words; apostrophes survive.
    text = re.sub(r"[^\w\s']|_", " ", text)
    text = _INTEGER_RE.sub(lambda m: _digits_to_words(m.group(1)), text)
    text = _A_HUNDRED_RE.sub(r"one \1", text)
    text = _HUNDRED_AND_RE.sub(r"\1 ", text)  # "one hundred and five" == "105"
    words = (w.strip("'") for w in text.split())
    return " ".join(w for w in words if w)


def word_errors(
    reference: str, hypothesis: str, *, apply_normalize: bool = True
) -> tuple[int, int, int, int]:
    """(substitutions, deletions, insertions, reference words) of a minimum-edit word alignment.

    Among equally short alignments the backtrace prefers substitutions, then deletions, then
    insertions, so the split is deterministic.
    """
    if apply_normalize:
        reference, hypothesis = normalize(reference), normalize(hypothesis)
    ref, hyp = reference.split(), hypothesis.split()
    n, m = len(ref), len(hyp)
    vocabulary: dict[str, int] = {}
    ref_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in ref], dtype=np.int64)
    hyp_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in hyp], dtype=np.int64)

    # cost[i, j]: edits turning ref[:i] into hyp[:j]. Each row is vectorised: substitutions and
    # deletions come from the row above; insertions chain along the row, which is a running
    # minimum of (cost - j) because each insertion adds exactly 1 per step.
    cost = np.empty((n + 1, m + 1), dtype=np.int32)
    steps = np.arange(m + 1, dtype=np.int32)
    cost[0] = steps
    for i in range(1, n + 1):
        candidates = np.empty(m + 1, dtype=np.int32)
        candidates[0] = i
        candidates[1:] = np.minimum(cost[i - 1, :-1] + (hyp_ids != ref_ids[i - 1]), cost[i - 1, 1:] + 1)
        cost[i] = np.minimum.accumulate(candidates - steps) + steps

    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return int(subs), dels, ins, n


def wer(reference: str, hypothesis: str, *, apply_normalize: bool = True) -> float:
    """Word error rate: (S + D + I) / N over the (normalised) reference's N words."""
    subs, dels, ins, n_ref = word_errors(reference, hypothesis, apply_normalize=apply_normalize)
    if n_ref == 0:
        raise ValueError("WER is undefined for a reference with no words")
    return (subs + dels + ins) / n_ref


def differences(reference: str, hypothesis: str, limit: int = 30) -> list[str]:
    """The (normalised) words that differ, as "before [reference] -> [hypothesis]" lines, for
    a failing test's message: WER says how much, these say what."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    out = []
    for op, a, b, c, d in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_opcodes():
        if op != "equal":
            out.append(f"{' '.join(ref[max(0, a - 3) : a])} [{' '.join(ref[a:b])}] -> [{' '.join(hyp[c:d])}]")
    return out[:limit]
