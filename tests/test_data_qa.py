"""`facelm data qa`: attribute-aware QA on real UTKFace photos, offline and against a local server;
leakage and refusal checks; resume after kill -9."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.cli import main
from facelm.data.qa import QAConfig, run_qa
from facelm.data.schema import QA_QUESTIONS, read_records
from facelm.errors import InputFormatError
from facelm.teacher.chat_server import ChatServer, ServerConfig
from facelm.teacher.labels import leaked_labels, phrases
from facelm.teacher.openai_teacher import encode_image
from facelm.teacher.prompts import load_prompts
from facelm.teacher.registry import TeacherSpec


def _labels_csv(tmp: Path, rows: list[dict]) -> Path:
    path = tmp / "labels.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "age", "gender", "race"])
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def utk_rows(utk_dir: Path) -> list[dict]:
    with open(utk_dir / "labels.csv") as f:
        return [r for r in csv.DictReader(f) if int(r["age"]) >= 18][:40]


def test_evidence_teacher_offline_with_bad_inputs(tmp_path, utk_dir, utk_rows):
    """FairFace-style and UTKFace-style labels in one CSV, a broken file and a face-less image:
    the photos with faces get every aspect, the others one failure each, and the job goes on."""
    Image.fromarray(np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1))).save(
        tmp_path / "gradient.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    rows = [{**utk_rows[0], "file": str(utk_dir / utk_rows[0]["file"])},
            {"file": str(utk_dir / utk_rows[1]["file"]), "age": "20-29", "gender": "Female",
             "race": "Latino_Hispanic"},
            {"file": str(tmp_path / "gradient.png"), "age": "30", "gender": "male", "race": "White"},
            {"file": str(tmp_path / "broken.jpg"), "age": "30", "gender": "male", "race": "White"}]
    labels = _labels_csv(tmp_path, rows)
    out = tmp_path / "qa"
    rc = main(["data", "qa", "--images", str(tmp_path), "--labels", str(labels), "--out", str(out),
               "--teacher", "evidence", "--aspects", "demographics,pose,general", "--quiet",
               "--workers", "2"])   # face analysis in a process pool
    assert rc == 0
    recs = list(read_records(out))
    assert len(recs) == 6 and {r.aspect for r in recs} == {"demographics", "pose", "general"}
    for r in recs:
        assert r.question == QA_QUESTIONS[r.aspect] and not leaked_labels(r.question, r.labels)
        assert r.teacher == "evidence" and r.prompt_version.startswith("facelm-v1+")
        assert Path(r.images[0]).is_absolute() and r.created.endswith("Z")
    demo = {r.labels["race"]: r.answer for r in recs if r.aspect == "demographics"}
    assert "Latino or Hispanic" in demo["Latino_Hispanic"]
    assert "between 20 and 29 years old" in demo["Latino_Hispanic"]
    fails = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {f["id"].split("#")[0]: f["reason"] for f in fails}
    assert reasons == {str(tmp_path / "gradient.png"): "no_face",
                       str(tmp_path / "broken.jpg"): "bad_image"}
    assert len(fails) == 6
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["counts"]["records"] == 6
    assert m["counts"]["failure_reasons"] == {"no_face": 3, "bad_image": 3}
    assert m["config"]["aspects"] == ["demographics", "pose", "general"]


def test_label_phrases_cover_every_label_set():
    assert phrases({"age": "0-2", "gender": "Female", "race": "East Asian"}).sentence() == (
        "According to the data set's labels, the person is a girl, of East Asian ethnicity, "
        "between 0 and 2 years old (an infant or toddler).")
    assert phrases({"age": "more than 70", "gender": "Male", "race": "Middle Eastern"}).age == \
        "over 70 years old"
    assert "outside the White, Black, Asian and Indian" in phrases({"race": "Others"}).ethnicity
    assert phrases({"age": "34", "gender": "male", "race": "Indian"}).sentence() == (
        "According to the data set's labels, the person is a man, of Indian ethnicity, "
        "about 34 years old.")


def test_leakage_check_blocks_questions_that_reveal_labels(tmp_path, utk_dir, utk_rows):
    from importlib import resources
    text = resources.files("facelm.teacher").joinpath("prompts").joinpath("v1.toml").read_text()
    assert load_prompts().version.startswith("facelm-v1+")
    leaky = text + '\n[qa.questions]\ndemographics = "How old does this woman look?"\n'
    (tmp_path / "leaky.toml").write_text(leaky)
    rows = [{**r, "file": str(utk_dir / r["file"])} for r in utk_rows[:4]]
    m = run_qa(QAConfig(images=str(tmp_path), labels=str(_labels_csv(tmp_path, rows)),
                        out=str(tmp_path / "qa"), aspects=("demographics",),
                        prompts=str(tmp_path / "leaky.toml")), progress=False)
    women = sum(r["gender"] == "female" for r in rows)
    assert 0 < women < 4
    assert m["counts"]["leakage"] == women and m["counts"]["records"] == 4 - women
    assert m["counts"]["failure_reasons"] == {"leakage": women}
    for r in read_records(tmp_path / "qa"):
        assert r.labels["gender"] == "male"     # only questions that reveal nothing were stored
    told = {"age": "34", "gender": "female", "race": "Black"}
    assert leaked_labels("Describe this image.", told) == []
    assert set(leaked_labels("Describe the Black woman, 34", told)) == {"Black", "woman", "34"}
    assert leaked_labels("Describe the human face.", {"gender": "male"}) == []  # not "man"


def test_refusals_are_retried_with_the_strict_prompt_and_counted(tmp_path, utk_dir, utk_rows):
    rows = [{**r, "file": str(utk_dir / r["file"])} for r in utk_rows[:3]]
    labels = _labels_csv(tmp_path, rows)
    with ChatServer(ServerConfig(refuse="unless_strict")) as server:
        spec = TeacherSpec(name="openai", model="local", base_url=server.url)
        m = run_qa(QAConfig(images=str(tmp_path), labels=str(labels), out=str(tmp_path / "a"),
                            teacher=spec, aspects=("pose", "forensic")), progress=False)
        strict = [b for b in server.requests if "never refuse" in b["messages"][0]["content"]]
    assert m["counts"]["records"] == 6 and m["counts"]["refusals"] == 6
    assert m["counts"]["refusals_recovered"] == 6 and len(strict) == 6
    assert all(not r.answer.startswith("I'm sorry") for r in read_records(tmp_path / "a"))
    assert m["usage"]["requests"] == 12 and m["usage"]["cost_usd"] is None  # no price for "local"
    with pytest.raises(InputFormatError, match="teacher openai:local"):   # one dataset per folder
        run_qa(QAConfig(images=str(tmp_path), labels=str(labels), out=str(tmp_path / "a")))

    with ChatServer(ServerConfig(refuse="always")) as server:
        spec = TeacherSpec(name="openai", model="gpt-4o", base_url=server.url)
        m = run_qa(QAConfig(images=str(tmp_path), labels=str(labels), out=str(tmp_path / "b"),
                            teacher=spec, aspects=("pose",), refusal_retries=2), progress=False)
    assert m["counts"]["records"] == 0 and m["counts"]["failure_reasons"] == {"refusal": 3}
    assert m["counts"]["refusals"] == 9 and m["usage"]["cost_usd"] > 0
    assert not (tmp_path / "b" / "records.jsonl").read_text()


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path, utk_dir, utk_rows):
    rows = [{**r, "file": str(utk_dir / r["file"])} for r in utk_rows[:30]]
    labels = _labels_csv(tmp_path, rows)
    out = tmp_path / "qa"
    with ChatServer(ServerConfig(latency_s=0.1, fault_rate=0.05, seed=3)) as server:
        cmd = [sys.executable, "-m", "facelm.cli", "data", "qa", "--images", str(tmp_path),
               "--labels", str(labels), "--out", str(out), "--teacher", "openai", "--model",
               "gpt-4o-mini", "--base-url", server.url, "--concurrency", "2",
               "--aspects", "pose,general", "--backoff", "0.05", "--quiet"]
        env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        records = out / "records.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not records.exists() or records.read_text().count("\n") < 15):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with open(records, "ab") as f:   # what a write torn by the kill would leave
            f.write(b'{"id": "torn')
        time.sleep(0.3)                  # requests the killed job had in flight arrive
        before = len(server.requests)
        finished = {json.loads(line)["id"] for line in records.read_text().splitlines()[:-1]}
        done_before = len(finished)
        assert 15 <= done_before < 60
        rc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rc.returncode == 0, rc.stderr
        second_run = server.requests[before:]
    # No request of the second run was for an item finished before the kill.
    url_to_file = {encode_image(r["file"]): r["file"] for r in rows}  # ids use the CSV value
    asked = set()
    for body in second_run:
        parts = body["messages"][1]["content"]
        aspect = "pose" if "face pose" in parts[0]["text"] else "general"
        asked.add(f"{url_to_file[parts[1]['image_url']['url']]}#{aspect}")
    assert not asked & finished and len(asked) == 60 - done_before
    ids = [json.loads(line)["id"] for line in records.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 60
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and len(m["runs"]) == 2
    assert m["runs"][-1]["skipped"] == done_before and m["runs"][-1]["records"] == 60 - done_before
    assert m["usage"]["cost_usd"] > 0 and m["usage"]["prompt_tokens"] > 0


def test_a_rejected_key_stops_the_job_with_exit_code_2(tmp_path, utk_dir, utk_rows, capsys):
    rows = [{**r, "file": str(utk_dir / r["file"])} for r in utk_rows[:10]]
    labels = _labels_csv(tmp_path, rows)
    with ChatServer(ServerConfig(fault_rate=1.0, fault_kinds=("401",))) as server:
        rc = main(["data", "qa", "--images", str(tmp_path), "--labels", str(labels), "--out",
                   str(tmp_path / "qa"), "--teacher", "openai", "--base-url", server.url,
                   "--concurrency", "2", "--quiet"])
        sent = len(server.requests)
    assert rc == 2 and sent <= 2          # stopped at once, not 80 items x 7 attempts
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "OPENAI_API_KEY" in err
    m = json.loads((tmp_path / "qa" / "manifest.json").read_text())
    assert m["status"] == "stopped" and m["counts"]["records"] == 0
