"""Reading what an environment needs out of an agent's free-text reply.

Every function here takes any string (empty, unicode, a megabyte of noise) and returns None
when nothing could be read; none of them raises on agent text.
"""

from __future__ import annotations

import collections
import functools
import re
from fractions import Fraction

# Characters that glue a letter to a word: "I'd", "it's", "e.g.", "u-turn", "w/o". A word-like
# synonym next to one of them followed by another word character is part of that word, not a choice.
_JOINERS = r"'’.\-/"


@functools.lru_cache(maxsize=64)
def _choice_pattern(keys: tuple[str, ...]) -> re.Pattern[str]:
    # Each alternative starts with its literal (boundary checks come after it as lookbehinds), so
    # the regex engine can skip ahead to candidate characters; longest first, so "up" beats "u".
    alternatives = []
    for key in sorted(keys, key=len, reverse=True):
        literal = re.escape(key)
        before = rf"(?<!\w{literal})(?<!\w[{_JOINERS}]{literal})" if re.match(r"\w", key[0]) else ""
        after = rf"(?!\w)(?![{_JOINERS}]\w)" if re.match(r"\w", key[-1]) else ""
        alternatives.append(literal + before + after)
    return re.compile("|".join(alternatives))


def extract_last_choice(text: str, synonyms: dict[str, str]) -> str | None:
    """The choice named last in ``text``, or None when none is named.

    ``synonyms`` maps every accepted spelling (a word like "north", a letter like "n", a symbol
    like "↑") to its choice ("up"). Matching ignores case. A spelling that starts or ends with a
    letter or digit only counts as a whole word: "n" is found in "go n." but not in "north-ish",
    "don't", "I'd", "e.g." or "w/o". Linear time: one regex scan.
    """
    lowered = {key.lower(): choice for key, choice in synonyms.items() if isinstance(key, str)}
    if not lowered or len(lowered) != len(synonyms) or any(not k or k != k.strip() for k in lowered):
        raise ValueError(
            "synonyms must map distinct (ignoring case), non-empty strings without surrounding "
            f"whitespace to choices, got keys {sorted(map(repr, synonyms))!r:.200}."
        )
    if not isinstance(text, str):
        return None
    # Lower-casing the text (not re.IGNORECASE) keeps the engine's fast skip-ahead.
    matches = _choice_pattern(tuple(lowered)).findall(text.lower())
    return lowered[matches[-1]] if matches else None


# ---- answers (math and other single-answer tasks) ---------------------------------------------

#: Longest answer kept from a reply; anything longer is cut (no task's answer is that long).
MAX_ANSWER_CHARS = 1000
# math-verify is only called on inputs this short (after the fast path has failed).
_MATH_VERIFY_MAX_CHARS = 200

_BOXED_START = re.compile(r"\\boxed\s*\{")
_BRACE = re.compile(r"[{}]")
# "Answer: 12", "**Final answer:** 12", "The answer is: 12". One character class between the
# word and the colon keeps the scan linear on long runs of spaces.
ANSWER_LINE = re.compile(r"\banswer\b(?:[ \t]+is\b)?[ \t*_]*[:：]", re.I)
# An unsigned number: 1,234,567 | 12 | 3.25 | .5 | 3/4 | 3 / 4. The sign is read separately.
_UNSIGNED = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[ ]?/[ ]?\d+)?"
_NUMBER = re.compile(r"(?<![\w.])" + _UNSIGNED)
_MINUSES = "-−–"  # ASCII hyphen, unicode minus, en dash
_FULL_NUMBER = re.compile(r"(-?)(\d+)(?:\.(\d+))?(?:/(-?\d+))?|(-?)\.(\d+)")
# A number followed only by words (units): "12 apples", "5 km".
_NUMBER_THEN_WORDS = re.compile(r"(-?[\d.,/ ]*\d)\s+[^\W\d_][^\W\d_ ]*(?: [^\W\d_]+)*")
_VARIABLE_EQUALS = re.compile(r"[a-zA-Z]\s*=\s*(.+)")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*(-?[\d.]+)\s*\}|(\d))\s*(?:\{\s*(-?[\d.]+)\s*\}|(\d))")
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|\{,\}")


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = collections.deque(pattern.finditer(text), maxlen=1)
    return last[0] if last else None


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (braces may nest), or None.

    Linear time: an unclosed ``\\boxed{`` cannot close after a later one that did not close, so
    each stretch of text is scanned once.
    """
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in _BOXED_START.finditer(text)]
    stop = len(text)
    for start in reversed(starts):
        depth = 1
        for brace in _BRACE.finditer(text, start, stop):
            depth += 1 if brace.group() == "{" else -1
            if depth == 0:
                return text[start : brace.start()]
        stop = start  # everything from here on is scanned
    return None


def extract_last_number(text: str) -> str | None:
    """The last number in ``text`` as written ("-1,234", "3.5", "3/4"), or None."""
    if not isinstance(text, str):
        return None
    last = _last_match(_NUMBER, text)
    if last is None:
        return None
    number = last.group()[:MAX_ANSWER_CHARS]
    at = last.start()
    # A minus sign counts unless it joins two operands ("5-3" names 3, not -3).
    if at >= 1 and text[at - 1] in _MINUSES and (at < 2 or not (text[at - 2].isalnum() or text[at - 2] in ")]}")):
        return "-" + number
    return number


def last_answer_line(text: str) -> re.Match[str] | None:
    """The last "Answer:" marker in ``text`` ("Answer:", "**Final answer:**", "The answer is:"), or
    None. The answer follows it, from the match's ``end()``."""
    return _last_match(ANSWER_LINE, text)


def extract_answer(text: str) -> str | None:
    """The final answer in a reply: the last ``\\boxed{...}``, else the last "Answer: ..." line,
    else the last number. None when there is none. At most ``MAX_ANSWER_CHARS`` characters."""
    if not isinstance(text, str):
        return None
    boxed = extract_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()[:MAX_ANSWER_CHARS]
    line = last_answer_line(text)
    if line is not None:
        end = text.find("\n", line.end(), line.end() + MAX_ANSWER_CHARS)
        content = text[line.end() : end if end >= 0 else line.end() + MAX_ANSWER_CHARS].strip().strip("*_").strip().rstrip(".").strip()
        if content:
            return content
    return extract_last_number(text)


def clean_math_text(text: str) -> str:
    """Unicode minus signs and spaces made ASCII, LaTeX spacing and ``\\text{}`` wrappers removed,
    ``\\frac{3}{4}`` (also ``\\dfrac``, ``\\frac34``) written "3/4", ``\\$`` dropped."""
    for minus in _MINUSES[1:]:
        text = text.replace(minus, "-")
    text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ").replace("\\$", "")
    text = _LATEX_SPACING.sub("", text)
    text = _LATEX_WRAPPER.sub(r"\1", text)
    return _LATEX_FRAC.sub(lambda m: f"{m[1] or m[2]}/{m[3] or m[4]}", text)


def normalize_answer(answer: str) -> str:
    """A canonical spelling of an answer, for comparing and counting outcomes.

    Strips ``$``, LaTeX spacing and ``\\text{}``, thousands separators, a leading ``x =`` and
    trailing units ("12 apples" -> "12"); ``\\frac{3}{4}`` -> "3/4"; numbers in one form
    ("12.50" -> "12.5", "-0" -> "0", "3/-4" -> "-3/4"; fractions are not reduced, since
    "2/4" is a different reply from "1/2").
    """
    s = clean_math_text(str(answer)[:MAX_ANSWER_CHARS])
    s = s.replace("$", "").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = " ".join(s.split()).rstrip(".").strip()
    variable = _VARIABLE_EQUALS.fullmatch(s)
    if variable:
        s = variable.group(1).strip()
    units = _NUMBER_THEN_WORDS.fullmatch(s)
    if units:
        s = units.group(1).strip()
    number = _canonical_number(s)
    return number if number is not None else s


def _canonical_number(s: str) -> str | None:
    # Thousands separators: "1,234" and "1 234" (groups of exactly three digits).
    compact = re.sub(r"(?<=\d)[, ](?=\d{3}(?!\d))", "", s).replace(" ", "")
    if len(compact) > 100:  # int() of huge digit strings is slow (and limited): not a number here
        return None
    m = _FULL_NUMBER.fullmatch(compact)
    if m is None:
        return None
    if m[6] is not None:  # ".5"
        sign, whole, frac, denominator = m[5], "0", m[6], None
    else:
        sign, whole, frac, denominator = m[1], m[2], m[3], m[4]
    if denominator is not None:
        if frac is not None or int(denominator) == 0:
            return None
        negative = (sign == "-") != denominator.startswith("-")
        text = f"{int(whole)}/{int(denominator.lstrip('-'))}"
        return "-" + text if negative and int(whole) != 0 else text
    frac = (frac or "").rstrip("0")
    text = str(int(whole)) + ("." + frac if frac else "")
    return "-" + text if sign == "-" and text.strip("0.") else text


def parse_number(answer: str) -> Fraction | None:
    """The exact value of a numeric answer ("1,234", "-3.5", "\\frac{3}{4}", "x = 2"), or None."""
    canonical = _canonical_number(normalize_answer(answer))
    return None if canonical is None else Fraction(canonical)


def answers_match(answer: str, reference: str) -> bool:
    """Whether ``answer`` is mathematically equal to ``reference``; never raises.

    Fast path: numbers are compared exactly, other answers as normalised strings (ignoring case). Only when
    neither decides (an expression such as ``\\sqrt{2}``) is math-verify asked, with guards:
    short inputs only, nothing known to hang sympy (towers, factorials, huge powers), words
    refused (math-verify reads "Paris" as a product of symbols, equal to "pairs"), and a
    1-second signal timeout in the main thread (signals cannot be used elsewhere).
    """
    a, ref = normalize_answer(answer), normalize_answer(reference)
    if a.casefold() == ref.casefold():  # "Paris" is "paris"; "B" is "b"
        return bool(a)
    a_num, ref_num = parse_number(a), parse_number(ref)
    if a_num is not None and ref_num is not None:
        return a_num == ref_num
    return _math_verify_equal(a, ref)


_SAFE_WORDS = {"sqrt", "frac", "dfrac", "pi", "sin", "cos", "tan", "log", "ln", "exp", "infty", "cdot", "times"}
_RISKY = re.compile(r"!|\\binom|\\choose|\\sum|\\prod|\\int|\\lim|\\infty.*\\infty")


def _math_verify_safe(s: str) -> bool:
    if not s or len(s) > _MATH_VERIFY_MAX_CHARS or _RISKY.search(s):
        return False
    # One exponent at most, with small numbers around it: 9^{9^9} or 99999999^{9999} hang sympy.
    if s.count("^") > 1 or ("^" in s and re.search(r"\d{4}", s)):
        return False
    words = re.findall(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}", s)
    return all(w.lower() in _SAFE_WORDS for w in words)


def _math_verify_equal(a: str, ref: str) -> bool:
    if not (_math_verify_safe(a) and _math_verify_safe(ref)):
        return False
    import threading

    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    seconds = 1 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${ref}$", parsing_timeout=seconds)
        target = parse(f"${a}$", parsing_timeout=seconds)
        return bool(gold and target and verify(gold, target, timeout_seconds=seconds))
    except (Exception, TimeoutException):  # TimeoutException is a BaseException
        return False


def extract_tagged(text: str, tag: str = "answer") -> str | None:
    """The stripped content of the last complete ``<tag>...</tag>`` pair (reasoning-gym's answer
    convention), or None. Linear time: two reverse searches, no regex backtracking."""
    if not isinstance(text, str):
        return None
    close = text.rfind(f"</{tag}>")
    start = text.rfind(f"<{tag}>", 0, close) if close >= 0 else -1
    return text[start + len(tag) + 2 : close].strip() if start >= 0 else None
