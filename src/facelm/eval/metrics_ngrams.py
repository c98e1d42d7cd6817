"""BLEU-1..4, CIDEr and ROUGE-L, numerically equal to pycocoevalcap 1.2, computed in bulk.

pycocoevalcap counts n-grams in Python dicts twice (once for BLEU, once for CIDEr) and computes
ROUGE-L's longest common subsequence with an O(m·n) Python table per pair. Here every n-gram of the
corpus gets an integer id once (numpy), BLEU and CIDEr are sums over joined id arrays, and the LCS
uses the bit-parallel algorithm (Hyyrö 2004: one big-integer update per token). The formulas and
their quirks are kept exactly, because scores must equal everyone else's:
* BLEU is corpus-level with the "closest" reference length per item and pycocoevalcap's
  tiny/small constants (1e-15, 1e-9);
* CIDEr (sigma 6) takes document frequencies from the references of this corpus, so it depends on
  the corpus it is computed on; its length penalty compares *bigram* counts, as the original does;
* ROUGE-L (beta 1.2) splits on single spaces, takes the max precision and max recall over references.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_N = 4
CIDER_SIGMA = 6.0
ROUGE_BETA = 1.2
_TINY, _SMALL = 1e-15, 1e-9   # pycocoevalcap's BLEU smoothing constants


@dataclass(frozen=True)
class NgramTable:
    """Every (sentence, n-gram) with its count; n-gram ids are unique across orders."""
    sent: np.ndarray     # (E,) sentence index
    gid: np.ndarray      # (E,) n-gram id
    order: np.ndarray    # (E,) n-gram order - 1 (0..3)
    count: np.ndarray    # (E,) occurrences in the sentence
    lengths: np.ndarray  # (S,) tokens per sentence
    n_ids: int           # number of distinct n-grams


def ngram_table(sentences: list[list[str]], n: int = MAX_N) -> NgramTable:
    """Count the 1..n-grams of whitespace-split sentences, all at once."""
    vocab: dict[str, int] = {}
    tok = np.asarray([vocab.setdefault(w, len(vocab)) for s in sentences for w in s],
                     dtype=np.int64)                            # (T,)
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    sent_of = np.repeat(np.arange(len(sentences)), lengths)    # (T,)
    pos = np.arange(len(tok)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    remaining = lengths[sent_of] - pos                         # tokens from here to the end
    sents, gids, orders = [], [], []
    prefix = np.zeros(len(tok), dtype=np.int64)                # id of the (k-1)-gram starting here
    offset, vsize = 0, max(len(vocab), 1)
    for k in range(1, n + 1):
        idx = np.nonzero(remaining >= k)[0]                    # a k-gram starts at idx
        # a k-gram's id combines its (k-1)-gram prefix's id with its last token
        key = prefix[idx] * vsize + tok[idx + k - 1] if k > 1 else tok[idx]
        uniq, local = np.unique(key, return_inverse=True)
        prefix = np.zeros(len(tok), dtype=np.int64)
        prefix[idx] = local
        sents.append(sent_of[idx])
        gids.append(local.ravel() + offset)
        orders.append(np.full(len(uniq), k - 1, dtype=np.int64))
        offset += len(uniq)
    order_of_gid = np.concatenate(orders)
    if offset == 0:
        empty = np.zeros(0, dtype=np.int64)
        return NgramTable(empty, empty, empty, empty, lengths, 0)
    # (sentence, n-gram) pairs with their counts, sorted by sentence then n-gram id
    key, cnt = np.unique(np.concatenate(sents) * offset + np.concatenate(gids), return_counts=True)
    gid = key % offset
    return NgramTable(sent=key // offset, gid=gid, order=order_of_gid[gid], count=cnt,
                      lengths=lengths, n_ids=offset)


@dataclass(frozen=True)
class Layout:
    """Where each item's hypothesis and references sit in the sentence list."""
    hyp: np.ndarray        # (N,) sentence index of item i's hypothesis
    ref_item: np.ndarray   # (R,) item of each reference sentence (sentences N..N+R-1)
    n_items: int


def layout(n_refs: list[int]) -> Layout:
    n = len(n_refs)
    return Layout(hyp=np.arange(n), ref_item=np.repeat(np.arange(n), n_refs), n_items=n)


def bleu(table: NgramTable, lay: Layout, n: int = MAX_N) -> list[float]:
    """Corpus BLEU-1..n exactly as pycocoevalcap's BleuScorer(option='closest')."""
    N, G = lay.n_items, table.n_ids
    is_ref = table.sent >= N
    r_item = lay.ref_item[table.sent[is_ref] - N]
    # max count of each n-gram over an item's references
    rkey = r_item * G + table.gid[is_ref]
    order = np.argsort(rkey, kind="stable")
    rkey_sorted, rcnt = rkey[order], table.count[is_ref][order]
    uniq, first = np.unique(rkey_sorted, return_index=True)
    maxref = np.maximum.reduceat(rcnt, first) if len(first) else rcnt
    h = ~is_ref
    hkey = table.sent[h] * G + table.gid[h]
    at = np.searchsorted(uniq, hkey)
    found = (at < len(uniq)) & (uniq[np.minimum(at, len(uniq) - 1)] == hkey)
    clipped = np.where(found, np.minimum(table.count[h], maxref[np.minimum(at, len(uniq) - 1)]), 0)
    correct = np.bincount(table.order[h], weights=clipped, minlength=n).astype(np.int64)
    hyp_len = table.lengths[:N]
    guess = [int(np.maximum(hyp_len - k, 0).sum()) for k in range(n)]
    testlen, reflen = int(hyp_len.sum()), _closest_reflen_total(table, lay)
    scores, b = [], 1.0
    for k in range(n):
        b *= float(int(correct[k]) + _TINY) / (guess[k] + _SMALL)
        scores.append(b ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _closest_reflen_total(table: NgramTable, lay: Layout) -> int:
    """Sum over items of the reference length closest to the hypothesis length (ties: shorter)."""
    N = lay.n_items
    ref_len = table.lengths[N:]
    hyp_len = table.lengths[:N][lay.ref_item]
    # sort key (|diff|, length) as pycocoevalcap's min((abs(l - testlen), l) ...)
    key = np.abs(ref_len - hyp_len) * (int(ref_len.max(initial=0)) + 1) + ref_len
    best = np.full(N, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, lay.ref_item, key)
    width = int(ref_len.max(initial=0)) + 1
    return int((best % width).sum())


def cider(table: NgramTable, lay: Layout, sigma: float = CIDER_SIGMA) -> tuple[float, np.ndarray]:
    """CIDEr (corpus mean, per-item scores) exactly as pycocoevalcap's CiderScorer."""
    N, G = lay.n_items, table.n_ids
    is_ref = table.sent >= N
    item_of_sent = np.concatenate([np.arange(N), lay.ref_item])
    # document frequency: in how many items' reference sets each n-gram occurs
    pairs = np.unique(item_of_sent[table.sent[is_ref]] * G + table.gid[is_ref])
    df = np.bincount(pairs % G, minlength=G).astype(np.float64) if G else np.zeros(0)
    ref_len = np.log(float(N))
    w = table.count.astype(np.float64) * (ref_len - np.log(np.maximum(1.0, df[table.gid])))
    n_sent = len(table.lengths)
    norm = np.sqrt(np.bincount(table.sent * MAX_N + table.order, weights=w * w,
                               minlength=n_sent * MAX_N)).reshape(n_sent, MAX_N)
    # join each reference n-gram with the same n-gram in its item's hypothesis
    h = ~is_ref
    hkey = table.sent[h] * G + table.gid[h]                      # hyp sentence index == item
    rsent = table.sent[is_ref]
    rkey = lay.ref_item[rsent - N] * G + table.gid[is_ref]
    at = np.minimum(np.searchsorted(hkey, rkey), max(len(hkey) - 1, 0))
    found = hkey[at] == rkey if len(hkey) else np.zeros(len(rkey), bool)
    wr, wh = w[is_ref], w[h][at] if len(hkey) else np.zeros(len(rkey))
    contrib = np.where(found, np.minimum(wh, wr) * wr, 0.0)
    R = n_sent - N
    val = np.bincount((rsent - N) * MAX_N + table.order[is_ref], weights=contrib,
                      minlength=R * MAX_N).reshape(R, MAX_N)
    nh, nr = norm[lay.ref_item], norm[N:]
    denom = nh * nr
    val = np.where(denom != 0, val / np.where(denom != 0, denom, 1.0), val)
    bigrams = np.maximum(table.lengths - 1, 0).astype(np.float64)
    delta = bigrams[lay.ref_item] - bigrams[N:]
    val *= (np.e ** (-(delta ** 2) / (2 * sigma ** 2)))[:, None]
    per_item = np.zeros((N, MAX_N))
    np.add.at(per_item, lay.ref_item, val)
    n_refs = np.bincount(lay.ref_item, minlength=N)
    scores = per_item.mean(axis=1) / n_refs * 10.0
    return float(np.mean(scores)), scores


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (bit-parallel, Hyyrö 2004)."""
    if len(a) > len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l(hyps: list[str], refs: list[list[str]], beta: float = ROUGE_BETA
            ) -> tuple[float, np.ndarray]:
    """ROUGE-L (corpus mean, per-item) exactly as pycocoevalcap's Rouge."""
    scores = []
    for hyp, item_refs in zip(hyps, refs):
        tc = hyp.split(" ")
        prec, rec = [], []
        for ref in item_refs:
            tr = ref.split(" ")
            lcs = lcs_length(tr, tc)
            prec.append(lcs / float(len(tc)))
            rec.append(lcs / float(len(tr)))
        p, r = max(prec), max(rec)
        scores.append(((1 + beta ** 2) * p * r) / float(r + beta ** 2 * p) if p != 0 and r != 0
                      else 0.0)
    arr = np.array(scores)
    return float(np.mean(arr)), arr


def ngram_metrics(hyps: list[str], refs: list[list[str]]) -> tuple[dict[str, float],
                                                                   dict[str, np.ndarray]]:
    """BLEU-1..4, ROUGE-L and CIDEr of tokenized texts: (corpus scores, per-item scores)."""
    sentences = [h.split() for h in hyps] + [r.split() for rs in refs for r in rs]
    table = ngram_table(sentences)
    lay = layout([len(rs) for rs in refs])
    out = {f"BLEU-{k + 1}": float(s) for k, s in enumerate(bleu(table, lay))}
    out["ROUGE-L"], rouge_items = rouge_l(hyps, refs)
    out["CIDEr"], cider_items = cider(table, lay)
    return out, {"ROUGE-L": rouge_items, "CIDEr": cider_items}
