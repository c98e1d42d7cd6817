"""Several teacher endpoints (`--base-url A,B`): requests spread over real local chat servers, fail
over when one is killed or answers 5xx, and fail the normal way when all are down."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from facelm.cli import main
from facelm.data.qa import QAConfig, run_qa
from facelm.data.schema import read_records
from facelm.errors import FaceLMError
from facelm.teacher.base import Task
from facelm.teacher.chat_server import ChatServer, ServerConfig
from facelm.teacher.endpoints import FAIL_AFTER, parse_endpoints
from facelm.teacher.openai_teacher import OpenAIConfig, OpenAITeacher
from facelm.teacher.prompts import ChatPrompt
from facelm.teacher.registry import TeacherSpec

ASPECTS = ("pose", "general")


@pytest.fixture
def labels(tmp_path: Path, utk_dir: Path) -> Path:
    """20 UTKFace photos (40 items with two aspects), paths absolute."""
    with open(utk_dir / "labels.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["age"]) >= 18][:20]
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "age", "gender", "race"])
        w.writeheader()
        w.writerows({**r, "file": str(utk_dir / r["file"])} for r in rows)
    return path


def _qa(labels: Path, out: Path, base_url: str, concurrency: int = 4, **teacher) -> dict:
    spec = TeacherSpec(name="openai", model="local", base_url=base_url, backoff_base_s=0.02,
                       timeout_s=5.0, **teacher)
    return run_qa(QAConfig(images=str(labels.parent), labels=str(labels), out=str(out),
                           teacher=spec, aspects=ASPECTS, concurrency=concurrency),
                  progress=False)


def _endpoints(out: Path) -> Counter:
    """Which endpoint answered each record (the provenance in its usage)."""
    return Counter(r.usage["endpoint"] for r in read_records(out))


def _dead_url() -> str:
    with ChatServer() as s:
        return s.url   # nothing listens there any more


def test_parse_endpoints_and_the_cli_joins_repeated_flags():
    assert parse_endpoints("http://a:1/v1/, http://b:2/v1#16") == [
        ("http://a:1/v1", None), ("http://b:2/v1", 16)]
    for bad in ("http://a/v1#0", "http://a/v1#x", "http://a/v1,http://a/v1/", " , "):
        with pytest.raises(FaceLMError, match="--base-url"):
            parse_endpoints(bad)
    from facelm.cli import build_parser
    from facelm.data.cli import _spec
    args = build_parser().parse_args(
        ["data", "qa", "--images", "d", "--labels", "l", "--out", "o", "--base-url", "http://a/v1",
         "--base-url", "http://b/v1#4,http://c/v1", "--endpoint-cooldown", "3"])
    spec = _spec(args)
    assert spec.base_url == "http://a/v1,http://b/v1#4,http://c/v1" and spec.cooldown_s == 3


def test_requests_spread_over_two_servers_with_per_endpoint_caps(tmp_path, labels):
    fast = ServerConfig(latency_s=0.05)
    with ChatServer(fast) as a, ChatServer(fast) as b:
        m = _qa(labels, tmp_path / "even", f"{a.url},{b.url}")
        even = (len(a.requests), len(b.requests))
        # A capped at 1 request in flight, B at --concurrency 4: B answers about 4 in 5.
        m2 = _qa(labels, tmp_path / "capped", f"{a.url}#1,{b.url}")
        capped = (len(a.requests) - even[0], len(b.requests) - even[1])
    assert m["counts"]["records"] == 40 and m["counts"]["failures"] == 0
    assert sum(even) == 40 and min(even) >= 15          # both served, about half each
    assert _endpoints(tmp_path / "even") == {a.url: even[0], b.url: even[1]}
    stats = {e["url"]: e for e in m["teacher"]["endpoints"]}
    assert stats[a.url]["answered"] == even[0] and stats[b.url]["concurrency"] == 4
    assert m2["counts"]["records"] == 40 and 2 <= capped[0] < capped[1]
    assert m2["teacher"]["endpoints"][0]["concurrency"] == 1


def test_a_server_killed_mid_run_the_other_finishes_the_job(tmp_path, labels):
    proc = subprocess.Popen([sys.executable, "-m", "facelm.teacher.chat_server", "--latency",
                             "0.1"], stdout=subprocess.PIPE, text=True)
    url_a = proc.stdout.readline().strip()
    out = tmp_path / "qa"
    records = out / "records.jsonl"

    def kill_after_ten_records() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                not records.exists() or records.read_text().count("\n") < 10):
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_ten_records)
    try:
        with ChatServer(ServerConfig(latency_s=0.05)) as b:
            killer.start()
            m = _qa(labels, out, f"{url_a},{b.url}", cooldown_s=0.3)
            killer.join()
    finally:
        proc.kill()
        proc.wait()
    ids = [json.loads(line)["id"] for line in records.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 40                # nothing lost, nothing twice
    assert m["status"] == "complete" and m["counts"]["failures"] == 0
    served = _endpoints(out)
    assert served[url_a] >= 3 and served[b.url] >= 20     # A answered until it died
    stats = {e["url"]: e for e in m["teacher"]["endpoints"]}
    assert stats[url_a]["failed"] >= 1 and stats[url_a]["answered"] == served[url_a]


def test_a_5xx_endpoint_is_failed_over(tmp_path, labels):
    broken = ServerConfig(fault_rate=1.0, fault_kinds=("500",))
    with ChatServer(broken) as a, ChatServer(ServerConfig(latency_s=0.02)) as b:
        m = _qa(labels, tmp_path / "qa", f"{a.url},{b.url}")
        sent_to_a = len(a.requests)
    assert m["counts"]["records"] == 40 and m["counts"]["failures"] == 0
    assert _endpoints(tmp_path / "qa") == {b.url: 40}
    # Only the requests out before it was marked down (4 slots + FAIL_AFTER), no probe in 10 s.
    assert sent_to_a <= 4 + FAIL_AFTER


def test_all_endpoints_down_records_failures_with_a_clear_message(tmp_path, labels, capsys):
    out = tmp_path / "qa"
    t0 = time.monotonic()
    rc = main(["data", "qa", "--images", str(tmp_path), "--labels", str(labels), "--out", str(out),
               "--teacher", "openai", "--model", "local", "--base-url", _dead_url(),
               "--base-url", _dead_url(), "--aspects", "pose", "--max-retries", "2",
               "--backoff", "0.01", "--quiet"])
    assert rc == 0 and time.monotonic() - t0 < 20
    assert "0 records, 20 failures" in capsys.readouterr().err
    fails = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(fails) == 20 and {f["reason"] for f in fails} == {"teacher_error"}
    assert "gave up after 3 attempts; last: connection error" in fails[0]["error"]
    assert "all 2 endpoints are down" in fails[-1]["error"]


def test_a_hanging_endpoint_times_out_and_the_request_moves_on():
    """The teacher alone (as `eval` uses it): a timeout on one endpoint is retried at once on the
    other, and each reply names the endpoint that answered."""
    hang = ServerConfig(fault_rate=1.0, fault_kinds=("hang",), hang_s=30)
    with ChatServer(hang) as a, ChatServer() as b:
        teacher = OpenAITeacher(OpenAIConfig(model="local", base_url=f"{a.url}#2,{b.url}",
                                             timeout_s=0.3))
        assert teacher.slots(3) == 5

        async def go():
            try:
                return await asyncio.gather(*(teacher.complete(Task(
                    "qa", ChatPrompt("s", f"question {i}"))) for i in range(6)))
            finally:
                await teacher.aclose()
        t0 = time.monotonic()
        replies = asyncio.run(go())
        assert time.monotonic() - t0 < 3
    assert {r.usage["endpoint"] for r in replies} == {b.url}
    assert sorted(r.usage["attempts"] for r in replies) == [1, 1, 1, 1, 2, 2]
