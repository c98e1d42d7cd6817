"""Speed of facelm.eval.metrics against pycocoevalcap (and bert-score) on 5,000 real items.

    python benchmarks/bench_metrics.py --items 5000 [--bertscore-items 1000] [--cache FILE]

Texts: the evidence explainer on real UTKFace photos and LFW View 1 pairs; each item's prediction
is one seed's wording and its references are other seeds' wordings (or another face's text), so
the items look like model outputs scored against paraphrased references. Analyses are cached in
--cache so a rerun measures only the metrics. Prints one table: seconds for the reference, for
facelm, the speed-up, and the largest difference between the two scores.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def analyses(n_faces: int, n_pairs: int, cache: Path) -> tuple[list, list]:
    from tqdm import tqdm
    from facelm.api import analyze
    from facelm.csvio import read_csv
    from facelm.faces.types import FaceAnalysis
    if cache.is_file():
        d = json.loads(cache.read_text())
        if len(d["faces"]) >= n_faces and len(d["pairs"]) >= n_pairs:
            return ([FaceAnalysis.from_dict(x) for x in d["faces"][:n_faces]],
                    [tuple(FaceAnalysis.from_dict(x) for x in p) for p in d["pairs"][:n_pairs]])
    utk = [r["file"] for r in read_csv(DATA / "utkface-dev" / "labels.csv")[1]]
    lfw = [(r["file_a"], r["file_b"]) for r in read_csv(DATA / "lfw-view1" / "pairs.csv")[1]][::20]
    faces, pairs = [], []
    for name in tqdm(utk, desc="analyse UTKFace", total=n_faces):
        if len(faces) == n_faces:
            break
        try:
            faces.append(analyze(DATA / "utkface-dev" / name))
        except Exception:  # noqa: BLE001 - a photo without a detectable face is skipped
            continue
    for a, b in tqdm(lfw[:n_pairs], desc="analyse LFW pairs"):
        pairs.append((analyze(DATA / "lfw-view1" / a), analyze(DATA / "lfw-view1" / b)))
    cache.write_text(json.dumps({"faces": [x.to_dict(embeddings=True) for x in faces],
                                 "pairs": [[x.to_dict(embeddings=True) for x in p] for p in pairs]}))
    return faces, pairs


def corpus(faces: list, pairs: list, n_items: int) -> tuple[dict, dict]:
    from facelm.explain import describe_all, explain_pair
    from facelm.verify import compare_analyses
    preds, refs = {}, {}
    for n, (a, b) in enumerate(pairs):
        texts = [explain_pair(compare_analyses(a, b), seed=s) for s in range(4)]
        for tier in ("concise", "detailed"):
            preds[f"p{n}-{tier}"] = getattr(texts[0], tier)
            refs[f"p{n}-{tier}"] = [getattr(t, tier) for t in texts[1:]]
    desc = [[describe_all(a, seed=s) for s in range(4)] for a in faces]
    variant = 0
    while len(preds) < n_items:
        for n, seeds in enumerate(desc):
            other = desc[(n + 1 + variant) % len(desc)]
            for aspect in seeds[0]:
                key = f"f{n}-{aspect}-{variant}"
                preds[key] = seeds[variant % 4][aspect]
                refs[key] = ([seeds[(variant + k) % 4][aspect] for k in (1, 2, 3)] if variant % 2 == 0
                             else [other[0][aspect], seeds[(variant + 1) % 4][aspect]])
        variant += 1
    keep = list(preds)[:n_items]
    return {k: preds[k] for k in keep}, {k: refs[k] for k in keep}


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def bench_reference(preds: dict, refs: dict) -> tuple[dict, dict]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    t, s = {}, {}
    tok = PTBTokenizer()
    (gts, res), t["tokenize (PTB, Java)"] = timed(lambda: (
        tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in refs.items()}),
        tok.tokenize({i: [{"caption": preds[i]}] for i in refs})))
    (b, _), t["BLEU-1..4"] = timed(Bleu(4).compute_score, gts, res, verbose=0)
    s.update({f"BLEU-{k + 1}": v for k, v in enumerate(b)})
    (s["METEOR"], _), t["METEOR"] = timed(lambda: Meteor().compute_score(gts, res))
    (s["ROUGE-L"], _), t["ROUGE-L"] = timed(Rouge().compute_score, gts, res)
    (s["CIDEr"], _), t["CIDEr"] = timed(Cider().compute_score, gts, res)
    return t, s


def bench_ours(preds: dict, refs: dict) -> tuple[dict, dict]:
    from facelm.eval import metrics_ngrams as ng
    from facelm.eval.metrics import regroup
    from facelm.eval.metrics_meteor import meteor_java
    from facelm.eval.tokenize import ptb_tokenize
    t, s = {}, {}
    ids = list(refs)
    flat, t["tokenize (PTB, Java)"] = timed(ptb_tokenize, [preds[i] for i in ids]
                                            + [r for i in ids for r in refs[i]])
    hyps, item_refs = regroup(flat, [refs[i] for i in ids])
    sentences = [h.split() for h in hyps] + [r.split() for rs in item_refs for r in rs]
    table, t_table = timed(ng.ngram_table, sentences)
    lay = ng.layout([len(r) for r in item_refs])
    b, t_bleu = timed(ng.bleu, table, lay)
    s.update({f"BLEU-{k + 1}": v for k, v in enumerate(b)})
    # the n-gram table is built once and shared by BLEU and CIDEr: charge half to each
    t["BLEU-1..4"] = t_bleu + t_table / 2
    (s["METEOR"], _), t["METEOR"] = timed(meteor_java, hyps, item_refs)
    (s["ROUGE-L"], _), t["ROUGE-L"] = timed(ng.rouge_l, hyps, item_refs)
    (s["CIDEr"], _), t_cider = timed(ng.cider, table, lay)
    t["CIDEr"] = t_cider + t_table / 2
    return t, s


def bench_bertscore(preds: dict, refs: dict, n: int) -> tuple[float | None, float, float | None]:
    """(bert-score seconds or None, ours, max |F difference|) on the first n items."""
    from facelm.eval.bertscore import BertScoreConfig, _load, bertscore, minilm_dir
    ids = list(refs)[:n]
    hyps, item_refs = [preds[i] for i in ids], [refs[i] for i in ids]
    _load("")   # model loading is excluded from both timings
    ours, t_ours = timed(bertscore, hyps, item_refs, BertScoreConfig())
    try:
        from bert_score import score
    except ImportError:
        return None, t_ours, None
    (_, _, f), t_ref = timed(score, hyps, item_refs, model_type=str(minilm_dir()), num_layers=6,
                             batch_size=64)
    return t_ref, t_ours, float(np.abs(f.numpy() - ours[:, 2]).max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--bertscore-items", type=int, default=1000, help="0 to skip BERTScore")
    ap.add_argument("--faces", type=int, default=160)
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/facelm-bench-metrics-analyses.json"))
    args = ap.parse_args()
    faces, pairs = analyses(args.faces, args.pairs, args.cache)
    preds, refs = corpus(faces, pairs, args.items)
    n_refs = sum(len(r) for r in refs.values())
    print(f"{len(preds)} items, {n_refs} references, "
          f"{np.mean([len(p.split()) for p in preds.values()]):.0f} words per prediction",
          file=sys.stderr)
    t_ref, s_ref = bench_reference(preds, refs)
    t_ours, s_ours = bench_ours(preds, refs)
    rows = [(k, t_ref[k], t_ours[k], "") for k in t_ref]
    for k in ("BLEU-1..4", "METEOR", "ROUGE-L", "CIDEr"):
        keys = [f"BLEU-{i}" for i in range(1, 5)] if k == "BLEU-1..4" else [k]
        diff = max(abs(s_ref[x] - s_ours[x]) for x in keys)
        rows = [(a, b, c, f"{diff:.1e}" if a == k else d) for a, b, c, d in rows]
    total_ref, total_ours = sum(t_ref.values()), sum(t_ours.values())
    rows.append(("sum of the stages above", total_ref, total_ours, ""))
    from facelm.eval.metrics import MetricsConfig, evaluate_texts
    # one evaluate_texts call overlaps METEOR's ~10 s jar start-up with tokenizing and counting
    one, t_one = timed(evaluate_texts, preds, refs, MetricsConfig(bertscore=False))
    assert all(one.scores[k] == s_ours[k] for k in s_ours)
    rows.append(("one `evaluate_texts` call (all of the above)", total_ref, t_one, ""))
    if args.bertscore_items:
        b_ref, b_ours, b_diff = bench_bertscore(preds, refs, args.bertscore_items)
        rows.append((f"BERTScore-MiniLM ({min(args.bertscore_items, len(refs))} items)",
                     b_ref, b_ours, "" if b_diff is None else f"{b_diff:.1e}"))
    print(f"| stage ({len(preds)} items) | reference s | facelm s | speed-up | max |score diff| |")
    print("|---|---:|---:|---:|---:|")
    for name, r, o, d in rows:
        ratio = f"{r / o:.1f}x" if r and o else "-"
        ref_s = f"{r:.2f}" if r is not None else "n/a"
        print(f"| {name} | {ref_s} | {o:.2f} | {ratio} | {d} |")
    print("\nscores (facelm): " + ", ".join(f"{k} {v:.4f}" for k, v in s_ours.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
