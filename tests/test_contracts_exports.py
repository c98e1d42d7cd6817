"""Issue 15, items 1, 3 and 8: exports that load back as themselves, `eval mcq` that fails
loudly, and the first hour (offline hub names, --help defaults, the merge alias, dir(facelm),
FACELM_DATA)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from facelm.cli import main
from facelm.data.export import to_sharegpt, to_swift
from facelm.data.schema import Record, read_records
from facelm.teacher.chat_server import ChatServer


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory, faceapi_dir: Path, utk_dir: Path) -> Path:
    """Two small datasets, `qa` (UTKFace photos) and `pairs` (face-api.js identities), with answers
    from the local chat server, built the way a user builds them."""
    root = tmp_path_factory.mktemp("datasets")
    with open(utk_dir / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["age"]) >= 18][:8]
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with ChatServer() as server:
        teacher = ["--teacher", "openai", "--model", "m", "--base-url", server.url, "--quiet"]
        assert main(["data", "qa", "--images", str(utk_dir), "--labels", str(root / "labels.csv"),
                     "--out", str(root / "qa"), "--aspects", "pose,general", *teacher]) == 0
        assert main(["data", "pairs", "--labels", str(faceapi_dir / "labels.csv"), "--images",
                     str(faceapi_dir), "--out", str(root / "pairs"), "--n-pairs", "16",
                     "--steps", "one", *teacher]) == 0
    return root


def _absolute(records: list[Record], root: Path) -> list[Record]:
    from dataclasses import replace
    return [replace(r, images=tuple(str(root / p) if not Path(p).is_absolute() else p
                                    for p in r.images)) for r in records]


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def _records(ds: Path) -> list[Record]:
    manifest = json.loads((ds / "manifest.json").read_text())
    return _absolute(list(read_records(ds)), Path(manifest.get("images_root", ".")))


def _summary(dest: Path, name: str, fmt: str) -> dict:
    return json.loads((dest / name / "facelm_export.json").read_text())["exports"][fmt]["summary"]


def _load_json(path: Path, cache: Path) -> list[dict]:
    """What ms-swift (`--dataset x.jsonl`) and LLaMA-Factory (a dataset_info file_name) run."""
    import datasets
    return list(datasets.load_dataset("json", data_files=str(path), split="train",
                                      cache_dir=str(cache)))


@pytest.mark.parametrize("fmt", ["hf", "swift", "llamafactory"])
def test_two_datasets_in_one_folder_load_back_as_themselves(datasets_dir, tmp_path, fmt):
    import datasets
    dest, cache = tmp_path / "export", tmp_path / "cache"
    for name in ("qa", "pairs"):
        assert main(["data", "export", str(datasets_dir / name), "--format", fmt, "--to",
                     str(dest), "--test-fraction", "0.25"]) == 0
    assert not (dest / "train.jsonl").exists() and not (dest / "data").exists()
    for name in ("qa", "pairs"):
        recs, s = _records(datasets_dir / name), _summary(dest, name, fmt)
        if fmt == "hf":
            loaded = datasets.load_dataset(str(dest / name), cache_dir=str(cache))
            rows = [r for split in loaded.values() for r in split]
            by_id = {r.id: r for r in recs}
            assert {r["id"] for r in rows} <= set(by_id) and len(rows) == s["train"] + s["test"]
            assert all(json.loads(r["labels"]) == by_id[r["id"]].labels for r in rows)
            assert any(json.loads(r["labels"]) for r in rows)   # the labels were kept
            assert rows[0]["images"][0].size[0] > 50             # the photo itself is embedded
            continue
        if fmt == "swift":
            files = [dest / name / f"{split}.jsonl" for split in ("train", "test")]
            expected = {_key(to_swift(r)) for r in recs}
        else:
            info = json.loads((dest / "dataset_info.json").read_text())
            files = [dest / info[f"{name}_{split}"]["file_name"] for split in ("train", "test")]
            expected = {_key(to_sharegpt(r)) for r in recs}
        rows = [row for f in files for row in _load_json(f, cache)]
        assert len(rows) == s["train"] + s["test"] > 0
        assert {_key(row) for row in rows} <= expected    # every row is one of this dataset's


def test_export_refuses_another_datasets_folder(datasets_dir, tmp_path, capsys):
    dest = tmp_path / "export"
    assert main(["data", "export", str(datasets_dir / "qa"), "--format", "swift",
                 "--to", str(dest)]) == 0
    before = (dest / "qa" / "train.jsonl").read_bytes()
    capsys.readouterr()
    rc = main(["data", "export", str(datasets_dir / "pairs"), "--format", "swift",
               "--to", str(dest), "--name", "qa"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert str(datasets_dir / "qa") in err and "train.jsonl" in err and "--name" in err
    assert (dest / "qa" / "train.jsonl").read_bytes() == before
    # the same dataset again (another format, then the same one) is its own folder: allowed
    assert main(["data", "export", str(datasets_dir / "qa"), "--format", "llamafactory",
                 "--to", str(dest)]) == 0
    assert main(["data", "export", str(datasets_dir / "qa"), "--format", "swift",
                 "--to", str(dest), "--test-fraction", "0"]) == 0
    assert not (dest / "qa" / "test.jsonl").exists()      # the earlier run's split is gone
    (dest / "mine").mkdir()
    (dest / "mine" / "notes.txt").write_text("not facelm's")
    assert main(["data", "export", str(datasets_dir / "qa"), "--format", "hf", "--to", str(dest),
                 "--name", "mine"]) == 2
    assert "notes.txt" in capsys.readouterr().err


def test_copied_images_travel_with_the_export(datasets_dir, tmp_path):
    dest = tmp_path / "export"
    for fmt in ("swift", "llamafactory"):
        assert main(["data", "export", str(datasets_dir / "pairs"), "--format", fmt, "--to",
                     str(dest), "--images", "copy"]) == 0
    moved = tmp_path / "gpu-machine" / "export"
    shutil.move(str(dest), str(moved))
    rows = [r for split in ("train", "test")
            for r in _load_json(moved / "pairs" / f"{split}.jsonl", tmp_path / "cache")]
    lf = [r for split in ("train", "test")
          for r in json.loads((moved / "pairs" / f"{split}.json").read_text())]
    paths = [p for row in rows + lf for p in row["images"]]
    assert paths and not any(Path(p).is_absolute() for p in paths)
    assert all((moved / p).is_file() for p in paths)
    assert {Path(p).parent.as_posix() for p in paths} == {"pairs/images"}
    # one copy per photo, shared by both formats' files (and no temporary file left)
    assert sorted(p.name for p in (moved / "pairs" / "images").iterdir()) == sorted(
        {Path(p).name for p in paths})


def test_relative_image_paths_and_collision_safe_copies(tmp_path, utk_dir):
    from facelm.data.export_files import ImagePlacer
    photos = sorted((utk_dir / "images").iterdir())[:2]
    for sub, photo in zip("ab", photos):   # two different photos with one file name
        (tmp_path / sub).mkdir()
        shutil.copy(photo, tmp_path / sub / "0001.jpg")
    dest = tmp_path / "dest"
    copy = ImagePlacer("copy", dest, dest / "ds")
    placed = [copy.place(str(tmp_path / s / "0001.jpg")) for s in "ab"]
    assert placed[0] != placed[1]
    assert [(dest / p).read_bytes() for p in placed] == [p.read_bytes() for p in photos]
    rel = ImagePlacer("relative", dest, dest / "ds").place(str(tmp_path / "a" / "0001.jpg"))
    assert rel == "../a/0001.jpg" and (dest / rel).is_file()


# -- eval mcq: a benchmark that was never really asked fails loudly (item 3) --------------------

FXB = ("utkface_single_mcq_gender_test.json", "tools_retrieval.json")


@pytest.fixture()
def bench(tmp_path, data_dir: Path) -> Path:
    """Two FaceXBench files as they are, without FaceXBench's images/ folder."""
    b = tmp_path / "bench"
    b.mkdir()
    for name in FXB:
        shutil.copy(data_dir / "facexbench-format" / name, b / name)
    return b


def _predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_mcq_exits_2_when_most_questions_fail_but_writes_the_report(bench, tmp_path, capsys):
    (bench / FXB[1]).unlink()
    out = tmp_path / "report"
    rc = main(["eval", "mcq", "--bench", str(bench), "--out", str(out), "--limit", "4",
               "--no-plots", "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert rc == 2 and len(err) == 1
    assert "4 of 4 questions failed" in err[0] and "--max-failed-share 0.5" in err[0]
    assert "image missing" in err[0]
    assert json.loads((out / "results.json").read_text())["overall"]["errors"] == 4
    assert (out / "report.md").is_file()
    # a stated share that allows it: the same run passes (and resumes from its predictions)
    assert main(["eval", "mcq", "--bench", str(bench), "--out", str(out), "--limit", "4",
                 "--no-plots", "--quiet", "--max-failed-share", "1"]) == 0
    assert main(["eval", "mcq", "--bench", str(bench), "--out", str(tmp_path / "x"),
                 "--max-failed-share", "nan"]) == 2


def test_tools_retrieval_questions_are_asked_text_only(bench, tmp_path):
    """FaceXBench's zero-image questions come with a black placeholder (not here): no failure,
    and the model gets no image."""
    from facelm.eval.mcq import load_benchmark
    from facelm.eval.mcq_run import MCQConfig, run_mcq
    seen: list[list] = []

    class Model:   # a stand-in VLM that records what it was given
        name = "recorder"

        def score_choices(self, images, prompt, choices):
            raise NotImplementedError

        def generate(self, images, prompt, **gen):
            seen.append(list(images))
            return "(B)"
    tasks = [t for t in load_benchmark(bench) if t.sub_category == "tools_retrieval"]
    assert all(Path(p).name.endswith(".png") for q in tasks[0].questions for p in q.image_paths)
    recs = run_mcq(Model(), tasks, MCQConfig(bench=str(bench), limit=5), tmp_path / "out",
                   progress=False)
    assert [r["error"] for r in recs] == [None] * 5 and seen == [[]] * 5
    assert all(r["pred"] == "B" for r in recs)
    # and through the CLI with the default model: the tools file alone fails nothing
    (bench / FXB[0]).unlink()
    assert main(["eval", "mcq", "--bench", str(bench), "--out", str(tmp_path / "cli"),
                 "--limit", "3", "--no-plots", "--quiet"]) == 0
    assert all(r["error"] is None for r in _predictions(tmp_path / "cli"))


# -- the first hour (item 8) ---------------------------------------------------------------------

def test_help_shows_every_default_and_the_merge_alias():
    from facelm.cli import build_parser
    from facelm.cli_options import IMAGE_COMMANDS, _has_default, subcommands
    commands = subcommands(build_parser())
    missing = []
    for name, p in commands.items():
        fmt = p._get_formatter()
        missing += [f"{name} {a.option_strings[0]}" for a in p._actions
                    if _has_default(a) and "default" not in fmt._format_action(a)]
    assert not missing
    assert "(default: 0)" in commands["eval mcq"].format_help()       # --seed had no help text
    assert "(default: absolute)" in commands["data export"].format_help()
    for name in IMAGE_COMMANDS:
        assert "--max-pixels" in commands[name]._option_string_actions, name
    # `facelm export` (merge an adapter) is now `facelm train merge`; the old name still works
    merge, old = commands["train merge"], commands["export"]
    assert merge.get_default("func") is old.get_default("func")
    assert [a.dest for a in merge._actions] == [a.dest for a in old._actions]


def test_max_pixels_reaches_the_image_loader_and_is_restored(faceapi_dir, capsys):
    import os
    png = faceapi_dir / "examples" / "images" / "amy" / "amy1.png"   # 150 x 150
    assert main(["analyze", str(png), "--fast", "--max-pixels", "10000"]) == 2
    err = capsys.readouterr().err
    assert "above the 0.01 MP limit" in err and "--max-pixels" in err
    assert "FACELM_MAX_PIXELS" not in os.environ


def test_dir_lists_the_verbs_without_importing_them(tmp_path):
    import subprocess
    import sys
    code = ("import sys, facelm; print([n for n in dir(facelm) if not n.startswith('_')], "
            "'facelm.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['analyze', 'compare', 'describe', 'search'] False"


def test_facelm_data_env(monkeypatch, data_dir, tmp_path):
    import subprocess
    import sys
    from facelm.errors import InputFormatError
    from facelm.eval.mcq_cli import default_data_dir
    monkeypatch.setenv("FACELM_DATA", str(data_dir))
    assert default_data_dir() == data_dir
    monkeypatch.setenv("FACELM_DATA", str(tmp_path))
    with pytest.raises(InputFormatError, match="FACELM_DATA"):
        default_data_dir()
    code = "import sys; sys.path.insert(0, 'tests'); import conftest; print(conftest.DATA)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == str(tmp_path)


def test_hub_name_offline_fails_in_seconds_with_the_hint(tmp_path, portrait_path):
    """A hub that accepts connections and never answers (what a dead network or a captive proxy
    looks like): refused within seconds, not minutes of retries, with the offline hint."""
    import socket
    import subprocess
    import sys
    import time
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    env = {**__import__("os").environ, "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}"}
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "facelm.cli", "describe", str(portrait_path),
                          "--model", "some-org/some-vlm"], capture_output=True, text=True,
                         env=env, timeout=60)
    elapsed = time.monotonic() - t0
    server.close()
    assert out.returncode == 2 and elapsed < 10, (elapsed, out.stderr[-500:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "some-org/some-vlm" in lines[0] and "hf download" in lines[0]


def test_datasets_4_is_required_where_the_hf_export_needs_it():
    import tomllib
    from importlib.metadata import version
    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    data = extras["project"]["optional-dependencies"]["data"]
    assert "datasets>=4" in data
    assert int(version("datasets").split(".")[0]) >= 4
    from facelm.data.export import hf_features
    assert "labels" in hf_features()
