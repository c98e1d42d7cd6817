"""METEOR 1.5 through the reference jar (batched), and an offline approximation without Java.

pycocoevalcap talks to `meteor-1.5.jar -stdio` one line at a time: it writes a SCORE line, flushes,
and blocks on the answer, 5,000 round trips for 5,000 items. We speak the same protocol to the same
jar with the same options, but stream all SCORE lines from a writer thread while reading the
answers, and start the jar early (its paraphrase tables take ~10 s to load), so the numbers are
identical and the waiting overlaps with other work. The jar's matching itself dominates on large
inputs; several jars can share the items (`workers`).

Without Java, `meteor_approx` computes METEOR's formula (Fmean with alpha 0.85, fragmentation
penalty 0.6 * (chunks/matches)^0.2) on exact unigram matches only: no stemming, synonyms,
paraphrases or function-word weighting, so it runs lower than the real METEOR and must never be
reported as METEOR; its key is METEOR_APPROX_KEY.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import FaceLMError
from .tokenize import JavaNotFoundError, java_available, pycocoevalcap_dir

METEOR_JAR = "meteor-1.5.jar"
METEOR_APPROX_KEY = "METEOR (no-Java approximation)"
# METEOR 1.5's English parameters (alpha, beta, gamma) as in the jar's default task.
ALPHA, BETA, GAMMA = 0.85, 0.20, 0.60


def default_workers(n_items: int) -> int:
    """One jar per 1,000 items, at most half the CPUs (the jars compete with each other and with
    Python for cores; on 2 shared cores two jars were slower than one) and at most 4."""
    return max(1, min((os.cpu_count() or 1) // 2, 4, n_items // 1000))


def start_meteor(workers: int = 1) -> list[subprocess.Popen]:
    """Start the jar(s) early: loading the paraphrase tables takes ~10 s, which can overlap with
    tokenization and the other metrics. Pass the result to `meteor_java(procs=...)`."""
    if not java_available():
        raise JavaNotFoundError("java was not found on PATH, and METEOR 1.5 is a Java program",
                                hint="install a Java runtime (apt-get install default-jre-headless)"
                                     ", or accept the labelled no-Java approximation")
    return [_start() for _ in range(max(1, workers))]


def meteor_java(hyps: list[str], refs: list[list[str]], *, workers: int | None = None,
                procs: list[subprocess.Popen] | None = None) -> tuple[float, np.ndarray]:
    """(corpus METEOR, per-item scores) from meteor-1.5.jar, as pycocoevalcap computes them.

    Matching is the slow part (stems, synonyms, paraphrase tables), so with `workers` > 1 the items
    are split over that many jar processes; their per-item statistics are then scored by one EVAL
    line, exactly as a single process would. Default: one process per 1,000 items, at most the
    number of CPUs (see default_workers). `procs`: jars already started by start_meteor (this
    function closes them).
    """
    if not hyps:
        raise FaceLMError("METEOR needs at least one item")
    procs = procs or start_meteor(workers or default_workers(len(hyps)))
    lines = [_score_line(h, r) for h, r in zip(hyps, refs)]
    bounds = np.linspace(0, len(lines), len(procs) + 1).astype(int)
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            parts = list(pool.map(_stats, procs, [lines[a:b] for a, b in zip(bounds, bounds[1:])]))
        stats = [st for part in parts for st in part]
        main = procs[0]
        main.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
        main.stdin.flush()
        per_item = np.array([float(_read(main)) for _ in lines])
        total = float(_read(main))
    finally:
        close_meteor(procs)
    return total, per_item


def close_meteor(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.stdin.close()
        proc.kill()
        proc.wait()
        _ERRORS.pop(proc.pid).close()


# pid -> the file a running jar writes its stderr to
_ERRORS: dict[int, Any] = {}


def _start() -> subprocess.Popen:
    # pycocoevalcap's command line; stderr goes to a file so a chatty jar can never block on it
    cmd = ["java", "-jar", "-Xmx2G", METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=pycocoevalcap_dir() / "meteor", stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err)
    _ERRORS[proc.pid] = err
    return proc


def _stats(proc: subprocess.Popen, lines: list[str]) -> list[str]:
    """Stream SCORE lines from a writer thread while reading the statistics lines back."""
    writer = threading.Thread(target=_write_all, args=(proc, lines), daemon=True)
    writer.start()
    stats = [_read(proc) for _ in lines]
    writer.join()
    return stats


def _score_line(hyp: str, refs: list[str]) -> str:
    # pycocoevalcap's _stat: the hypothesis loses '|||' and double spaces; references are passed as is
    hyp = hyp.replace("|||", "").replace("  ", " ")
    return " ||| ".join(("SCORE", " ||| ".join(refs), hyp)) + "\n"


def _write_all(proc: subprocess.Popen, lines: list[str]) -> None:
    try:
        for line in lines:
            proc.stdin.write(line.encode())
        proc.stdin.flush()
    except BrokenPipeError:
        pass  # the reader reports the failure with the jar's stderr


def _read(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        _ERRORS[proc.pid].seek(0)
        err = _ERRORS[proc.pid].read().decode(errors="replace")[-400:]
        raise FaceLMError(f"METEOR (meteor-1.5.jar) stopped answering: {err}".strip())
    return line.decode().strip()


# ---- offline approximation ---------------------------------------------------------------------

def _align(hyp: list[str], ref: list[str]) -> tuple[int, int]:
    """(matches, chunks) of a greedy exact-match alignment that prefers continuing a chunk."""
    free: dict[str, list[int]] = {}
    for j, w in enumerate(ref):
        free.setdefault(w, []).append(j)
    matches, chunks, last = 0, 0, -2
    for w in hyp:
        spots = free.get(w)
        if not spots:
            last = -2
            continue
        j = last + 1 if last + 1 in spots else spots[0]
        spots.remove(j)
        matches += 1
        chunks += j != last + 1
        last = j
    return matches, chunks


def _score(m: int, ch: int, lh: int, lr: int) -> float:
    if m == 0 or lh == 0 or lr == 0:
        return 0.0
    p, r = m / lh, m / lr
    fmean = p * r / (ALPHA * p + (1 - ALPHA) * r)
    # as METEOR 1.5 does, an identical hypothesis (one chunk, same length) gets no penalty
    frag = 0.0 if ch == 1 and lh == lr == m else ch / m
    return fmean * (1 - GAMMA * frag ** BETA)


def meteor_approx(hyps: list[str], refs: list[list[str]]) -> tuple[float, np.ndarray]:
    """(corpus score, per-item scores): METEOR's formula on exact unigram matches only.

    As in METEOR, each item keeps its best-scoring reference, and the corpus score is computed
    from the summed statistics of those alignments, not as a mean of item scores.
    """
    per_item, totals = [], np.zeros(4)
    for hyp, item_refs in zip(hyps, refs):
        h = hyp.split()
        best = max(((_score(m, ch, len(h), len(r.split())), m, ch, len(r.split()))
                    for r in item_refs for m, ch in [_align(h, r.split())]), key=lambda t: t[0])
        per_item.append(best[0])
        totals += (best[1], best[2], len(h), best[3])
    m, ch, lh, lr = totals
    return _score(int(m), int(ch), int(lh), int(lr)), np.array(per_item)
