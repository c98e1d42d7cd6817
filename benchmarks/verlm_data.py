"""Build the small VerLM ablation datasets from the real photos in ../shared/data, with the offline
evidence teacher (facelm.explain), as `records.jsonl` folders of facelm.data.schema.Record.

    python benchmarks/verlm_data.py --out .cache/verlm-ablation [--train-pairs 600 --test-pairs 100]

* pairs: LFW View 1 (`view1_train` for training, `view1_test` for evaluation: disjoint identities),
  ground truth `same` from pairs.csv, concise and detailed explanations from `explain_pair`;
  `--extra-pairs` adds same/different pairs formed from view1_train photos and identities only;
* qa: utkface-train photos for training, utkface-dev photos for evaluation (each photo one person),
  one record per aspect from `describe_face`.
Face analyses are cached per image by the VerLM feature extractor, so training reuses them.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tqdm import tqdm

from facelm.csvio import read_csv

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _pick_pairs(rows: list[dict], split: str, n: int, seed: int) -> list[dict]:
    """n pairs of a split, half same / half different, in a seeded order."""
    rng = random.Random(seed)
    same = [r for r in rows if r["set"] == split and r["same"] == "1"]
    diff = [r for r in rows if r["set"] == split and r["same"] == "0"]
    rng.shuffle(same), rng.shuffle(diff)
    if n <= 0:  # all of the split
        out = same + diff
    else:
        out = same[: n // 2] + diff[: n - n // 2]
    rng.shuffle(out)
    return out


def extra_pairs(rows: list[dict], split: str, n: int, seed: int) -> list[dict]:
    """n more pairs (half same, half different) formed from the split's own photos and identities
    only, excluding pairs the split already lists: more variety without touching held-out people."""
    rng = random.Random(seed + 1)
    photos: dict[str, set[str]] = {}
    listed = set()
    for r in rows:
        if r["set"] == split:
            for f, i in ((r["file_a"], r["id_a"]), (r["file_b"], r["id_b"])):
                photos.setdefault(i, set()).add(f)
            listed.add(frozenset((r["file_a"], r["file_b"])))
    ids = sorted(photos)
    multi = [i for i in ids if len(photos[i]) > 1]
    out: list[dict] = []
    for k in range(max(0, n) * 20):  # bounded: small splits may run out of new same pairs
        if len(out) >= n:
            break
        same = k % 2 == 0 and bool(multi)
        ia = rng.choice(multi if same else ids)
        ib = ia if same else rng.choice([i for i in ids if i != ia])
        fa = rng.choice(sorted(photos[ia]))
        fb = rng.choice(sorted(photos[ib] - {fa}))
        if frozenset((fa, fb)) in listed:
            continue
        listed.add(frozenset((fa, fb)))
        out.append({"set": split, "same": "1" if same else "0", "file_a": fa, "file_b": fb,
                    "id_a": ia, "id_b": ib})
    return out


def pair_records(rows: list[dict], root: Path, ext, prefix: str) -> list[dict]:
    from facelm.data.schema import PAIR_QUESTIONS, Record
    from facelm.explain import explain_pair
    from facelm.verify import compare_analyses
    out, skipped = [], 0
    for i, r in enumerate(tqdm(rows, desc=f"{prefix} pairs", file=sys.stderr)):
        files = (str(root / r["file_a"]), str(root / r["file_b"]))
        try:
            a, b = (ext.analysis(f) for f in files)
        except Exception:  # noqa: BLE001 - a photo without a face is left out, counted below
            skipped += 1
            continue
        exp = explain_pair(compare_analyses(a, b), seed=i)
        for tier, text in (("concise", exp.concise), ("detailed", exp.detailed)):
            out.append(Record(id=f"{prefix}-{i}-{tier}", kind="pair", images=files,
                              question=PAIR_QUESTIONS[tier], answer=text, tier=tier,
                              same=r["same"] == "1", identities=(r["id_a"], r["id_b"]),
                              teacher="evidence", prompt_version="explain_pair").to_dict())
    print(f"{prefix}: {len(out)} pair records, {skipped} pairs skipped (no face)", file=sys.stderr)
    return out


def qa_records(rows: list[dict], root: Path, ext, prefix: str) -> list[dict]:
    from facelm.data.schema import QA_QUESTIONS, Record
    from facelm.explain import ASPECTS, describe_face
    out = []
    for i, r in enumerate(tqdm(rows, desc=f"{prefix} qa", file=sys.stderr)):
        f = str(root / r["file"])
        try:
            a = ext.analysis(f)
        except Exception:  # noqa: BLE001
            continue
        for aspect in ASPECTS:
            out.append(Record(id=f"{prefix}-{i}-{aspect}", kind="qa", images=(f,),
                              question=QA_QUESTIONS[aspect], answer=describe_face(a, aspect, seed=i),
                              aspect=aspect, identities=(r["file"],),
                              labels={k: r[k] for k in ("age", "gender", "race")},
                              teacher="evidence", prompt_version="describe_face").to_dict())
    return out


def _write(records: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "records.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "verlm-ablation")
    ap.add_argument("--train-pairs", type=int, default=600)
    ap.add_argument("--test-pairs", type=int, default=100)
    ap.add_argument("--extra-pairs", type=int, default=0,
                    help="more train pairs formed from view1_train photos and identities only")
    ap.add_argument("--train-faces", type=int, default=150, help="utkface-train photos for QA training")
    ap.add_argument("--test-faces", type=int, default=25, help="utkface-dev photos for QA evaluation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from facelm.models.verlm.features import FaceFeatureExtractor
    ext = FaceFeatureExtractor()
    lfw, utk_train, utk_dev = DATA / "lfw-view1", DATA / "utkface-train", DATA / "utkface-dev"
    rows = read_csv(lfw / "pairs.csv")[1]
    train_f, test_f = read_csv(utk_train / "labels.csv")[1], read_csv(utk_dev / "labels.csv")[1]
    random.Random(args.seed).shuffle(train_f), random.Random(args.seed).shuffle(test_f)
    test = pair_records(_pick_pairs(rows, "view1_test", args.test_pairs, args.seed), lfw, ext, "test")
    test += qa_records(test_f[: args.test_faces], utk_dev, ext, "test")
    train_rows = (_pick_pairs(rows, "view1_train", args.train_pairs, args.seed)
                  + extra_pairs(rows, "view1_train", args.extra_pairs, args.seed))
    train = pair_records(train_rows, lfw, ext, "train")
    train += qa_records(train_f[: args.train_faces], utk_train, ext, "train")
    _write(train, args.out / "train")
    _write(test, args.out / "test")
    print(f"{len(train)} train and {len(test)} test records in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
