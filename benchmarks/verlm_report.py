"""Writes docs/benchmarks/verlm.md and verlm_ablation.json from the runs' eval.json files
(benchmarks/verlm_ablation.py calls it; `--report-only` reruns it alone)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facelm.eval.explanations import PairScore, paired_difference, support_rate
from facelm.eval.faithfulness import GROUPS
from facelm.eval.metrics_report import markdown_table

NLG = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "BERTScore-MiniLM")
# (the paper's claim, A, B): the claim is that A beats B
CLAIMS = (
    ("cross-projection beats concatenation", "cross-eos-staged", "concat-eos-staged"),
    ("the separator helps", "cross-eos-staged", "cross-nosep-staged"),
    ("staged beats end-to-end only", "cross-eos-staged", "cross-eos-e2e"),
    ("grounded beats vision (beyond the paper)", "cross-eos-staged-grounded", "cross-eos-staged"),
)
METRICS = {
    "support rate": lambda s: support_rate(s),
    "verdict agreement": lambda s: sum(x.agrees for x in s) / len(s),
    "distinct texts": lambda s: len({x.text for x in s}) / len(s),
}


def _load(runs: Path, slug: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((runs / slug).glob("s*/eval.json"))]


def _scores(run: dict[str, Any]) -> list[PairScore]:
    return [PairScore(**p) for p in run["pairs"]]


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _ci(ci: Any) -> str:
    return "" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _mean(vals: list[float | None]) -> float | None:
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def variant_rows(runs: Path, variants: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """(main table rows, per-claim-group rows); pooled over seeds, intervals from seed 0's pairs
    resampled with all seeds averaged (paired_difference's machinery with B = nothing)."""
    main, groups = [], []
    names = {"template": "template explainer (reference)", **{k: v[0] for k, v in variants.items()}}
    for slug, label in names.items():
        rs = _load(runs, slug)
        if not rs:
            continue
        sums = [r["summary"] for r in rs]
        pooled = [x for r in rs for x in _scores(r)]
        nlg = [_mean([r.get("nlg", {}).get(k) for r in rs]) for k in NLG]
        swap = rs[0].get("swap", {})
        main.append([label, len(rs), rs[0].get("steps", "–"),
                     *("–" if v is None else f"{v:.3f}" for v in nlg),
                     _pct(_mean([s["verdict_agreement"] for s in sums])) + _ci(sums[0]["ci"]["verdict_agreement"]),
                     _pct(support_rate(pooled)) + _ci(sums[0]["ci"]["support_rate"]),
                     _pct(_mean([s["distinct_texts"] for s in sums])),
                     f"{sum(s['invented_numbers'] for s in sums) / max(sum(s['pairs'] for s in sums), 1):.2f}",
                     _pct(swap.get("verdict_kept")), _pct(swap.get("text_changed")),
                     rs[0].get("generate_s_per_pair", "–")])
        groups.append([label] + [_pct(support_rate(pooled, g)) for g in GROUPS[:8]])
    return main, groups


def claim_rows(runs: Path) -> list[list[Any]]:
    rows = []
    for claim, a, b in CLAIMS:
        ra, rb = _load(runs, a), _load(runs, b)
        if not ra or not rb:
            continue
        sa, sb = [_scores(r) for r in ra], [_scores(r) for r in rb]
        cells = []
        for name, metric in METRICS.items():
            d = paired_difference(sa, sb, metric, reps=500)
            cells.append(f"{d['verdict']} ({100 * (d['difference'] or 0):+.1f}{_ci(d['ci'])})")
        rows.append([claim, f"{len(ra)} / {len(rb)}", *cells])
    return rows


HEAD = """# VerLM: ablation with confidence, faithfulness first (CPU)

Reproduce (2-core CPU; `benchmarks/verlm_ablation.py` has the commands; raw per-pair scores in
`.cache/verlm-runs/v2/*/s*/eval.json`, summary in `verlm_ablation.json` beside this file):

```bash
python benchmarks/verlm_data.py --out .cache/verlm-v2 --train-pairs 0 --extra-pairs 2000 \\
    --test-pairs 400 --train-faces 400 --test-faces 40
python benchmarks/verlm_ablation.py            # all variants x seeds 0,1,2, then this report
```
"""


def write_report(runs: Path, variants: dict[str, Any], setup: dict[str, Any], docs: Path) -> None:
    main, groups = variant_rows(runs, variants)
    claims = claim_rows(runs)
    parts = [HEAD, f"Setup: `{json.dumps(setup)}`; tiny decoder text-pretraining: "
             f"`{(runs / 'tiny-lm' / 'pretrain.json').read_text().strip() if (runs / 'tiny-lm' / 'pretrain.json').is_file() else '–'}`.\n",
             "## Every variant (mean over seeds; [95 % bootstrap interval over the test pairs, seed 0])\n",
             markdown_table(["variant", "seeds", "steps", *NLG, "verdict agrees %", "claims supported %",
                             "distinct texts %", "invented numbers / text", "swap: verdict kept %",
                             "swap: text changed %", "s / pair"], main),
             "\n## Claims supported, by claim group (%, pooled over seeds)\n",
             markdown_table(["variant", *GROUPS[:8]], groups),
             "\n## The paper's claims (A minus B, same test pairs, seeds averaged; points and 95 % "
             "bootstrap interval in percentage points)\n",
             markdown_table(["claim (A beats B)", "seeds A / B", *METRICS], claims),
             "\n*holds*: the interval lies above 0; *does not hold*: below 0; *cannot tell*: it contains 0.\n"]
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "verlm.md").write_text("\n".join(parts))
    summary = {"setup": setup, "variants": {slug: [{k: v for k, v in r.items() if k != "pairs"}
                                                   for r in _load(runs, slug)]
                                            for slug in ["template", *variants]}}
    (docs / "verlm_ablation.json").write_text(json.dumps(summary, indent=1) + "\n")


def _row(name: str, r: dict[str, Any]) -> list[Any]:
    s = r["summary"]
    scores = [PairScore(**p) for p in r["pairs"]]
    return [name, s["pairs"], _pct(s["verdict_agreement"]) + _ci(s["ci"]["verdict_agreement"]),
            _pct(s["support_rate"]) + _ci(s["ci"]["support_rate"]), _pct(s["distinct_texts"]),
            f"{s['invented_numbers']} / {s['numbers']}",
            *(_pct(support_rate(scores, g)) for g in GROUPS[:8]),
            *(f"{r['nlg'].get(k, 0):.3f}" for k in NLG), r["generate_s_per_pair"]]


def small_report(out: dict[str, Any]) -> str:
    """The shipped model's table (benchmarks/verlm_small_eval.py)."""
    rows = [_row(f"{out['model']}: {name}", out[key]) for key, name in
            (("concise", "concise, numbers copied"), ("concise_unguarded", "concise, guard off"),
             ("detailed", "detailed, numbers copied")) if key in out]
    t, sw = out.get("timing"), out["swap"]
    return "\n".join([
        f"## {out['model']} on held-out LFW View 1 test pairs\n",
        markdown_table(["run", "pairs", "verdict agrees %", "claims supported %", "distinct texts %",
                        "invented / numbers", *(f"{g} %" for g in GROUPS[:8]), *NLG, "s / pair (batch 16)"],
                       rows),
        "\n[95 % bootstrap intervals over the pairs]. References for the NLG metrics: the template "
        "explainer's texts for the same pairs.\n",
        f"Photo swap ({sw['pairs']} pairs): verdict kept {_pct(sw['verdict_kept'])} %, fused score kept "
        f"{_pct(sw['fused_score_kept'])} %, numbers kept {_pct(sw['numbers_kept'])} %, text changed "
        f"{_pct(sw['text_changed'])} %.\n",
        (f"One pair at a time on this CPU (median of {t['pairs']}, photos already analysed, idle "
         f"machine, 2 threads): concise {t['concise_median_s']:.1f} s, both tiers "
         f"{t['both_tiers_median_s']:.1f} s; the template explainer {1000 * t['template_median_s']:.1f} ms.\n"
         if t else "")])
