"""Caption tokenization as the COCO caption evaluation does it, with an offline fallback.

pycocoevalcap runs Stanford's PTBTokenizer (CoreNLP 3.4.1, Java) with `-preserveLines -lowerCase`
and then drops a fixed list of punctuation tokens. Scores are only comparable with published ones if
the tokens are the same, so when Java is available we run *the same jar* (shipped inside
pycocoevalcap) in one call for every sentence; the metric code then works on its output.

Note a quirk we keep on purpose: `-lowerCase` lowercases the bracket tokens to `-lrb-` etc., while
pycocoevalcap's punctuation list holds `-LRB-`, so brackets survive as tokens in the reference; we
do the same, or BLEU/CIDEr would differ from everyone else's numbers.

Without Java, `python_tokenize` approximates PTB rules (contractions, brackets, quotes, number-aware
punctuation splitting); scores computed on it are labelled as approximate by the callers.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import FaceLMError

# Exactly pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS.
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!",
                          ",", ":", "-", "--", "...", ";"])
CORENLP_JAR = "stanford-corenlp-3.4.1.jar"
# Characters Java's line reader treats as line ends: inside a caption they would shift every later
# caption by a line, so they become spaces (pycocoevalcap replaces only "\n").
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]")


class JavaNotFoundError(FaceLMError):
    """Java (needed by the reference PTB tokenizer and METEOR 1.5) is not installed."""


def java_available() -> bool:
    """True when a `java` executable is on PATH (FACELM_NO_JAVA=1 pretends it is not)."""
    if os.environ.get("FACELM_NO_JAVA", "") not in ("", "0"):
        return False
    return shutil.which("java") is not None


def pycocoevalcap_dir() -> Path:
    """Folder of the installed pycocoevalcap package (it ships the CoreNLP and METEOR jars)."""
    import importlib.util
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise FaceLMError("pycocoevalcap is not installed; it carries the reference tokenizer and "
                          "METEOR jars", hint="pip install 'facelm[eval]' (pycocoevalcap==1.2)")
    return Path(list(spec.submodule_search_locations)[0])


def ptb_tokenize(texts: list[str]) -> list[str]:
    """Tokenize with the reference PTBTokenizer jar: lowercased tokens joined by single spaces."""
    if not java_available():
        raise JavaNotFoundError("java was not found on PATH",
                                hint="install a Java runtime (e.g. apt-get install default-jre-headless)"
                                     " or use the Python tokenizer approximation")
    jar = pycocoevalcap_dir() / "tokenizer" / CORENLP_JAR
    if not texts:
        return []
    with tempfile.TemporaryDirectory(prefix="facelm-ptb-") as tmp:
        src = Path(tmp) / "captions.txt"
        src.write_bytes("\n".join(_LINE_BREAKS.sub(" ", t) for t in texts).encode("utf-8"))
        proc = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
                               "-preserveLines", "-lowerCase", str(src)],
                              capture_output=True, check=False)
    if proc.returncode != 0:
        raise FaceLMError(f"the PTB tokenizer failed: {proc.stderr.decode(errors='replace')[-400:]}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts):
        raise FaceLMError(f"the PTB tokenizer returned {len(lines)} lines for {len(texts)} texts")
    return [_drop_punct(line.rstrip().split(" ")) for line in lines[:len(texts)]]


def _drop_punct(tokens: list[str]) -> str:
    return " ".join(w for w in tokens if w not in PUNCTUATIONS)


# ---- offline approximation ---------------------------------------------------------------------

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_TOKEN = re.compile(r"""
    (?:[a-z]\.){2,}                      # abbreviations with inner dots: u.s., e.g.
  | (?:(?<=\s)|^)[-+]\d+(?:[.,:]\d+)*     # signed numbers keep their sign: -10, +18
  | \d+(?:[.,:]\d+)+                     # numbers with separators: 0.91, 1,000, 3:30
  | (?:ca|wo|do|does|did|is|are|was|were|have|has|had|could|would|should|must|need)(?=n't\b)
  | n't\b | '(?:s|m|d|ll|re|ve)\b        # contractions split as PTB does
  | \w+(?:[-/]\w+)*                      # words, hyphenated and slashed compounds
  | \.\.\. | -- | ``| '' | [!?]+         # multi-character punctuation
  | \S                                   # anything else, one character at a time
""", re.X)


def python_tokenize(texts: list[str]) -> list[str]:
    """A pure-Python approximation of the PTB tokenizer + punctuation removal (no Java needed)."""
    out = []
    for text in texts:
        text = text.lower().replace("–", " -- ").replace("—", " -- ")
        text = re.sub(r"\b(can)(not)\b", r"\1 \2", text)   # PTB splits "cannot"
        text = re.sub(r'"(?=\w)|^"', " `` ", text)
        text = text.replace('"', " '' ")
        tokens = [_BRACKETS.get(tok, tok) for tok in _TOKEN.findall(text)]
        out.append(_drop_punct(tokens))
    return out


TOKENIZERS = {"ptb-java": ptb_tokenize, "python": python_tokenize}


def tokenize(texts: list[str], backend: str = "auto") -> tuple[list[str], str]:
    """(tokenized texts, backend used). "auto" takes the Java reference when Java is present."""
    if backend == "auto":
        backend = "ptb-java" if java_available() else "python"
    if backend not in TOKENIZERS:
        raise FaceLMError(f"unknown tokenizer {backend!r}", hint=f"use one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[backend](texts), backend
