"""Judge a VerLM model (default: the shipped `verlm-small`) on held-out LFW View 1 test pairs by what
it says: faithfulness by claim group, invented numbers, verdict agreement, distinct texts, photo
swap, NLG metrics against the template explainer, with and without the number-copying guard, and
its time per pair on this CPU against the template explainer.

    python benchmarks/verlm_small_eval.py [--model verlm-small] [--pairs 300] [--detailed 60]

Writes docs/benchmarks/verlm_small.json and docs/benchmarks/verlm_small.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "verlm-v2"
DOCS = REPO / "docs" / "benchmarks"


def _recs(tier: str, n: int) -> list:
    from facelm.data.schema import read_records
    return [r for r in read_records(DATA / "test") if r.kind == "pair" and r.tier == tier][:n]


def judge(vlm, recs: list, *, copy_numbers: bool, max_new_tokens: int) -> dict:
    from facelm.eval.explanations import score_pair, with_intervals
    from facelm.eval.metrics import compute_metrics
    items = [vlm.item(r.images, r.question) for r in recs]
    t = time.time()
    preds = vlm.generate_items(items, copy_numbers=copy_numbers, max_new_tokens=max_new_tokens)
    gen_s = time.time() - t
    scores = [score_pair(p, [vlm.extractor.analysis(x) for x in r.images], same=r.same)
              for p, r in zip(preds, recs)]
    nlg = compute_metrics({str(i): p for i, p in enumerate(preds)},
                          {str(i): [r.answer] for i, r in enumerate(recs)})
    return {"summary": with_intervals(scores), "nlg": {k: round(v, 4) for k, v in nlg.items()},
            "generate_s_per_pair": round(gen_s / max(len(recs), 1), 2), "examples": preds[:3],
            "pairs": [s.to_dict() for s in scores]}


def time_one_pair(vlm, recs: list, n: int = 5) -> dict:
    """Seconds to answer one pair, both tiers in one batch (what `facelm verify --model` does),
    against the template explainer on the same analysed pair."""
    from facelm.data.schema import PAIR_QUESTIONS
    from facelm.explain import explain_pair
    from facelm.verify import compare_analyses
    model_s, template_s = [], []
    for r in recs[:n]:
        analyses = [vlm.extractor.analysis(x) for x in r.images]
        t = time.time()
        explain_pair(compare_analyses(*analyses))
        template_s.append(time.time() - t)
        t = time.time()
        vlm.ask(list(r.images), dict(PAIR_QUESTIONS))
        model_s.append(time.time() - t)
        t = time.time()
        vlm.ask(list(r.images), {"concise": PAIR_QUESTIONS["concise"]})
        model_s[-1] = (model_s[-1], time.time() - t)
    both = sorted(x for x, _ in model_s)
    concise = sorted(y for _, y in model_s)
    return {"pairs": len(model_s), "both_tiers_median_s": both[len(both) // 2],
            "concise_median_s": concise[len(concise) // 2],
            "template_median_s": sorted(template_s)[len(template_s) // 2]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="verlm-small")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--detailed", type=int, default=60)
    ap.add_argument("--unguarded", type=int, default=100, help="pairs decoded without the guard")
    ap.add_argument("--swap", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing", choices=("with", "skip", "only"), default="with",
                    help="time one pair at a time (on an otherwise idle machine); 'only' updates the "
                         "timing of an existing verlm_small.json")
    ap.add_argument("--int8", type=int, default=0, metavar="N",
                    help="only: judge the int8-weight LM (the CPU default) on N concise and N/5 "
                         "detailed pairs, time it against fp32 in the same run, and add the rows "
                         "to the existing verlm_small.json")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from facelm.eval.explanations import swap_sensitivity
    from facelm.models import load_model
    vlm = load_model(args.model, batch_size=16, int8=False)   # the rows below: fp32
    concise, detailed = _recs("concise", args.pairs), _recs("detailed", args.detailed)
    path = DOCS / "verlm_small.json"
    if args.int8:
        return _write(_int8_rows(json.loads(path.read_text()), args, vlm, concise, detailed))
    if args.timing == "only":
        out = json.loads(path.read_text())
        out["timing"] = time_one_pair(vlm, concise)
        if "timing_int8" in out:   # both again, one after the other on the same (idle) machine
            int8 = load_model(args.model, batch_size=16, int8=True)
            out["timing_int8"] = {"fp32": out["timing"], "int8": time_one_pair(int8, concise)}
        return _write(out)
    out = {"model": args.model}
    if args.timing == "with":
        out["timing"] = time_one_pair(vlm, concise)
        print("timing", out["timing"], file=sys.stderr, flush=True)
    out["concise"] = judge(vlm, concise, copy_numbers=True, max_new_tokens=160)
    print("concise", json.dumps({k: v for k, v in out["concise"]["summary"].items() if k != "groups"}),
          file=sys.stderr, flush=True)
    if args.unguarded:
        out["concise_unguarded"] = judge(vlm, concise[: args.unguarded], copy_numbers=False, max_new_tokens=160)
    if args.detailed:
        out["detailed"] = judge(vlm, detailed, copy_numbers=True, max_new_tokens=320)
    k = args.swap
    sw = vlm.generate_batch([([r.images[1], r.images[0]], r.question) for r in concise[:k]], max_new_tokens=160)
    texts = [p["text"] for p in out["concise"]["pairs"][:k]]
    out["swap"] = swap_sensitivity(texts, sw)
    return _write(out)


def _int8_rows(out: dict, args: argparse.Namespace, fp32, concise: list, detailed: list) -> dict:
    """The int8-weight LM beside the fp32 rows (`fp32`: the model loaded without int8): its
    quality, and both timed in this run."""
    from facelm.models import load_model
    int8 = load_model(args.model, batch_size=16, int8=True)
    out["timing_int8"] = {"fp32": time_one_pair(fp32, concise), "int8": time_one_pair(int8, concise)}
    print("timing", out["timing_int8"], file=sys.stderr, flush=True)
    out["concise_int8"] = judge(int8, concise[: args.int8], copy_numbers=True, max_new_tokens=160)
    out["detailed_int8"] = judge(int8, detailed[: max(1, args.int8 // 5)], copy_numbers=True,
                                 max_new_tokens=320)
    return out


def _write(out: dict) -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "verlm_small.json").write_text(json.dumps(out, indent=1) + "\n")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from verlm_report import small_report
    (DOCS / "verlm_small.md").write_text(small_report(out))
    print((DOCS / "verlm_small.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
