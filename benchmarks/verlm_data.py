"""Build the small VerLM ablation datasets from the real photos in ../shared/data, with the offline
evidence teacher (facelm.explain), as `records.jsonl` folders of facelm.data.schema.Record.

    python benchmarks/verlm_data.py --out .cache/verlm-ablation [--train-pairs 600 --test-pairs 100]

* pairs: LFW View 1 (`view1_train` for training, `view1_test` for evaluation: disjoint identities),
  ground truth `same` from pairs.csv, concise and detailed explanations from `explain_pair`;
* qa: UTKFace dev photos (each photo one person), one record per aspect from `describe_face`.
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
    out = same[: n // 2] + diff[: n - n // 2]
    rng.shuffle(out)
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
    ap.add_argument("--train-faces", type=int, default=150, help="UTKFace photos for QA training")
    ap.add_argument("--test-faces", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from facelm.models.verlm.features import FaceFeatureExtractor
    ext = FaceFeatureExtractor()
    lfw, utk = DATA / "lfw-view1", DATA / "utkface-dev"
    rows = read_csv(lfw / "pairs.csv")[1]
    faces = read_csv(utk / "labels.csv")[1]
    random.Random(args.seed).shuffle(faces)
    train_f, test_f = faces[: args.train_faces], faces[args.train_faces: args.train_faces + args.test_faces]
    test = pair_records(_pick_pairs(rows, "view1_test", args.test_pairs, args.seed), lfw, ext, "test")
    test += qa_records(test_f, utk, ext, "test")
    train = pair_records(_pick_pairs(rows, "view1_train", args.train_pairs, args.seed), lfw, ext, "train")
    train += qa_records(train_f, utk, ext, "train")
    _write(train, args.out / "train")
    _write(test, args.out / "test")
    print(f"{len(train)} train and {len(test)} test records in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
