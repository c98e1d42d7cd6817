"""Contracts of what facelm writes for people to read: explanation numbers equal the JSON's rounded
values and do not depend on file paths (issue 15 item 2), FaceXBench-comparable MCQ scoring (item
6), and plots that show group sizes and keep labels readable (item 9)."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from facelm.api import analyze, compare, describe
from facelm.explain import describe_all, explain_pair
from facelm.explain.claims import extract_claims
from facelm.verify import compare_analyses

N_PAIRS = 100


def _pairs_sharing_photos(lfw_pairs: list[dict], n: int) -> list[dict]:
    """n real View 1 pairs, preferring photos that several pairs use: fewer photos to analyse."""
    uses = Counter(p for r in lfw_pairs for p in (r["file_a"], r["file_b"]))
    ranked = sorted(enumerate(lfw_pairs),
                    key=lambda ir: (-min(uses[ir[1]["file_a"]], uses[ir[1]["file_b"]]), ir[0]))
    return [r for _, r in ranked[:n]]


@pytest.fixture(scope="module")
def lfw_explained(lfw_dir: Path, lfw_pairs: list[dict]) -> list[dict]:
    """The `facelm verify --json` object of 100 real pairs, each photo analysed once."""
    rows = _pairs_sharing_photos(lfw_pairs, N_PAIRS)
    photos = {p for r in rows for p in (r["file_a"], r["file_b"])}
    analyses = {p: analyze(str(lfw_dir / p)) for p in sorted(photos)}
    out = []
    for r in rows:
        cmp = compare_analyses(analyses[r["file_a"]], analyses[r["file_b"]])
        cmp = dataclasses.replace(cmp, explanation=explain_pair(cmp))
        out.append(json.loads(json.dumps(cmp.to_dict())))
    return out


# Numbers the texts state and the JSON value each must equal once formatted as the text does.
# (pattern, function of the verify JSON giving the expected digits)
_STATED = {
    "max_abs_yaw": (r"one face turned (\d+)°", lambda d: str(d["differences"]["max_abs_yaw"])),
    "sharpness_ratio": (r"one photo (\d+\.\d)× sharper",
                        lambda d: f"{d['differences']['sharpness_ratio']:.1f}"),
    "geometry_distance": (r"landmark ratios differ by (\d+)%",
                          lambda d: str(round(d["differences"]["geometry_distance"] * 100))),
    "geometry_largest": (r"on average, most in [a-z -]+ \((\d+)%\)",
                         lambda d: str(round(d["differences"]["geometry_largest"][1] * 100))),
}


def _gap_claims(text: str) -> list[tuple[str, float]]:
    kinds = ("age_gap", "yaw_gap", "pitch_gap", "roll_gap", "brightness_gap")
    return [(c.kind, c.value) for c in extract_claims(text, pair=True) if c.kind in kinds]


def test_numbers_in_texts_equal_the_json_rounded_values(lfw_explained):
    found: Counter = Counter()
    for d in lfw_explained:
        diffs, exp = d["differences"], d["explanation"]
        for tier in ("concise", "detailed"):
            text = exp[tier]
            assert not re.search(r"\b(?:1|under 1) years\b", text), text
            for kind, value in _gap_claims(text):
                found[kind] += 1
                want = diffs[kind]
                if kind == "brightness_gap":  # stated as a whole percentage of full scale
                    value, want = round(value * 100), round(want * 100)
                assert value == want, (kind, value, want, text)
                assert exp["evidence"][kind] == diffs[kind]
            for kind, (pattern, expected) in _STATED.items():
                for m in re.finditer(pattern, text):
                    found[kind] += 1
                    assert m[1] == expected(d), (kind, m[0], expected(d), text)
    # Every detailed text states the age and yaw gaps (all 100 pairs have attributes and poses);
    # the pattern checks must have matched something, or they test nothing.
    assert found["age_gap"] >= N_PAIRS and found["yaw_gap"] >= 80, found
    assert found["geometry_distance"] >= N_PAIRS and found["geometry_largest"] >= N_PAIRS, found


def test_stated_per_face_values_add_up_to_the_stated_gap(lfw_explained):
    """'yaw +12° and -20° (gap 32°)' and 'ages 36 and 57 (21 years apart)' add up, and each
    per-face value is the JSON's per-face value rounded as the web table rounds it."""
    checked = 0
    for d in lfw_explained:
        text = d["explanation"]["detailed"]
        ages = re.search(r"(?:estimated|ages are) (\d+) and (\d+)", text)
        if ages:
            x, y = int(ages[1]), int(ages[2])
            ages_json = (d["a"]["attributes"]["age"], d["b"]["attributes"]["age"])
            assert (x, y) == tuple(round(v) for v in ages_json), text
            assert abs(x - y) == d["differences"]["age_gap"], text
            checked += 1
        yaws = re.search(r"yaws? (?:of )?([-+]?\d+)° and ([-+]?\d+)°", text)
        if yaws:
            assert abs(int(yaws[1]) - int(yaws[2])) == d["differences"]["yaw_gap"], text
            assert int(yaws[1]) == round(d["a"]["pose"]["yaw"]), text
    assert checked == N_PAIRS


def _copy_as(src: Path, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return str(dst)


def test_wording_does_not_depend_on_the_path(lfw_dir, lfw_pairs, lfw_explained, tmp_path):
    """The same photos under other names (CLI paths, an upload's name) give identical texts."""
    from facelm.serve.engine import VerifyOptions, verify
    rows = _pairs_sharing_photos(lfw_pairs, 2)
    for i, (r, d) in enumerate(zip(rows, lfw_explained)):
        a = _copy_as(lfw_dir / r["file_a"], tmp_path / f"elsewhere{i}" / "first.jpg")
        b = _copy_as(lfw_dir / r["file_b"], tmp_path / f"other{i}.jpeg")
        moved = compare(a, b).explanation
        assert (moved.concise, moved.detailed) == (d["explanation"]["concise"],
                                                    d["explanation"]["detailed"])
        served = verify(Path(a).read_bytes(), "upload.jpg", Path(b).read_bytes(), "x.jpg",
                        VerifyOptions(), max_pixels=40_000_000)
        assert served["explanation"]["detailed"] == moved.detailed
        assert describe(a).answers == describe_all(analyze(str(lfw_dir / r["file_a"])))


# ---- FaceXBench-comparable scoring (item 6) ----------------------------------------------------

# Recorded answers to the first questions of FaceXBench's utkface_single_mcq_gender_test.json
# (options: Both / Female / None of the above / Male in varying order), with the letter FaceXBench's
# own aggregate_results.py reads from each (checked by running that script on these answers).
_RECORDED = [  # (answer or None for a failed question, mode, FaceXBench's reading)
    ("B", "generate", "B"),
    ("A man with short hair", "generate", "A"),           # the article read as a label
    ("The answer is not A, it is C", "generate", "A"),    # negation ignored, first letter wins
    ("(C) Male", "generate", "C"),
    ("b", "generate", None),                              # lowercase labels never count
    ("I think it's D.", "generate", "D"),
    (None, "generate", None),                             # a failed question: no prediction
    ("D", "loglik", "D"),                                 # log-likelihood: the chosen letter
    ("Option B", "generate", "B"),
    ("E", "generate", None),                              # beyond the four options
    ("female", "generate", None),                         # option text is matched case-sensitively
]


def _recorded(task) -> list[tuple[str | None, str, str | None]]:
    """_RECORDED plus "Male, not Female": the first option (in option order) that is a substring
    of the answer is chosen, whichever of the two that is in this question."""
    options = task.questions[len(_RECORDED)].options
    first = min(("Female", "Male"), key=options.index)
    return [*_RECORDED, ("Male, not Female", "generate", "ABCD"[options.index(first)])]


def _records(task) -> list[dict]:
    """predictions.jsonl records as `facelm eval mcq` writes them, for the recorded answers."""
    from facelm.eval.extract import extract_choice
    out = []
    for q, (answer, mode, _) in zip(task.questions, _recorded(task)):
        rec = {"file": task.file, "id": q.id, "task": task.task, "sub_category": task.sub_category,
               "category": task.category, "num_images": task.num_images, "correct": q.correct,
               "mode": mode, "output": answer if mode == "generate" else None,
               "error": None if answer is not None else "image missing: x.png",
               "pred": (answer if mode == "loglik" else
                        None if answer is None else extract_choice(answer, q.options))}
        out.append({**rec, "is_correct": rec["pred"] == q.correct})
    return out


def test_facexbench_reading_reproduces_aggregate_results(data_dir, tmp_path):
    from facelm.eval.mcq import load_task
    from facelm.eval.mcq_facexbench import aggregate, results_txt, score_both
    from facelm.eval.mcq_report import summarise
    task = load_task(data_dir / "facexbench-format" / "utkface_single_mcq_gender_test.json")
    records = _records(task)
    want = [r[2] for r in _recorded(task)]
    layout = tmp_path / "facexbench" / "m"
    scored = score_both(records, [task], "facexbench", layout, "m")
    assert [r["pred_facexbench"] for r in scored] == want
    assert [r["pred"] for r in scored] == want  # --extractor facexbench scores with its reading
    # facelm's stricter reading differs on the quirks and is kept beside it
    assert scored[1]["pred_facelm"] is None and scored[2]["pred_facelm"] == "C"
    agg, summary = aggregate(layout), summarise(scored)
    assert agg["questions"] == len(records) == summary["overall"]["questions"]
    assert summary["overall"]["accuracy"] == pytest.approx(agg["accuracy"])
    assert summary["extractors"]["facexbench"]["correct"] == agg["correct"]
    assert agg["category"]["bias_fairness"]["questions"] == len(records)
    # FaceXBench's layout: the benchmark JSON with a prediction per asked question
    doc = json.loads((layout / task.file).read_text())
    assert doc["category"] == "bias_fairness" and len(doc["questions"]) == len(records)
    assert doc["questions"]["1"]["prediction"] == "B" and doc["questions"]["7"]["prediction"] == ""
    assert (tmp_path / "facexbench" / "facexbench_results.txt").read_text() == results_txt(agg, "m")
    default = summarise(score_both(records, [task], "facelm", tmp_path / "x" / "m", "m"))
    assert default["overall"]["correct"] == default["extractors"]["facelm"]["correct"]


def test_headline_follows_the_json_category(data_dir, tmp_path):
    from facelm.eval.mcq import load_task
    doc = json.loads((data_dir / "facexbench-format" / "utkface_single_mcq_gender_test.json")
                     .read_text())
    doc.update({"category": "face_localization", "sub-category": "headpose"})
    (tmp_path / "biwi_single_mcq.json").write_text(json.dumps(doc))
    assert load_task(tmp_path / "biwi_single_mcq.json").task == "Face Localization"


# ---- plots (item 9) ----------------------------------------------------------------------------

def _report_with_groups() -> dict:
    """A verify report as eval/verify_cli.py writes it: a 184-pair and a 1-pair group."""
    from facelm.eval.fairness import attributes_by_group, verification_by_group
    groups = ["female"] * 184 + ["male"]
    labels = [1, 0] * 92 + [1]
    preds = [True, False] * 90 + [False, False, True, True] + [True]
    fr = verification_by_group(groups, labels, preds, [0.5] * 185)
    rows = [{"label": {"gender": g, "race": r, "age": 30}, "est": {"gender": e, "age": 31,
                                                                  "expression": "neutral"}}
            for g, r, e in [("male", "white", "male")] * 30 + [("female", "black", "male")]]
    return {"verification": {"fairness": {"gender": {**fr, "source": "labels"}}},
            "attributes": attributes_by_group(rows)}


def test_fairness_chart_shows_n_and_the_interval(tmp_path):
    from facelm.eval.verify_report import fairness_panels, fairness_plot
    panels = dict(fairness_panels(_report_with_groups()))
    bars = {b[0]: b for b in panels["verification accuracy by gender (labels)"]}
    assert set(bars) == {"female (n=184)", "male (n=1)"}
    lo, hi = bars["male (n=1)"][3]
    assert bars["male (n=1)"][1] == 1.0 and lo < 0.25 and hi == 1.0  # one pair: a wide interval
    f_lo, f_hi = bars["female (n=184)"][3]
    assert f_lo < bars["female (n=184)"][1] < f_hi and f_hi - f_lo < 0.1
    race = {b[0] for b in panels["gender accuracy by race (labels)"]}
    assert race == {"white (n=30)", "black (n=1)"}
    assert fairness_plot(_report_with_groups(), tmp_path / "fairness.png")
    assert (tmp_path / "fairness.png").stat().st_size > 5000


def test_fairness_chart_axis_starts_at_zero(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from facelm.eval.verify_report import fairness_plot
    seen = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: seen.append(fig))
    fairness_plot(_report_with_groups(), tmp_path / "f.png")
    axes = seen[0].axes
    assert axes and all(ax.get_xlim()[0] == 0.0 for ax in axes)
    assert any("n=184" in t.get_text() for t in axes[0].get_yticklabels())


def test_radar_labels_stay_off_the_chart(tmp_path):
    """The sub-task names sit outside the 100 % ring: none covers a point of the ring or a spoke."""
    import numpy as np
    from facelm.eval.mcq import TASKS
    from facelm.eval.mcq_report import radar_figure
    names = [title for _, title in TASKS.values()]
    fig = radar_figure(names, [100.0] * len(names), "m")
    fig.savefig(tmp_path / "radar.png")
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    ring = np.linspace(0, 2 * np.pi, 720)
    ring_px = ax.transData.transform(np.c_[ring, np.full_like(ring, 100.0)])
    spoke_angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    spokes = ax.transData.transform([(a, r) for a in spoke_angles for r in np.linspace(0, 100, 50)])
    labels = [t for t in ax.texts if t.get_text()]
    assert len(labels) == len(names)
    for t in labels:
        box = t.get_window_extent(renderer)
        assert not box.count_contains(np.r_[ring_px, spokes]), t.get_text()
    assert (tmp_path / "radar.png").stat().st_size > 5000
