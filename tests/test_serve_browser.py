"""The page of ``hiere serve`` in a real browser: Debian's chromium driven by Playwright against a server this test
starts on 127.0.0.1. It picks a bundled example, pastes a text, checks the table against ``hiere extract`` on the
same text, selects a fact, sees its evidence, and writes the screenshot of docs/serve.md.

The browser is ``/usr/bin/chromium`` (``apt-get install chromium``; ``scripts/test.sh`` installs it when missing;
``HIERE_CHROMIUM`` points elsewhere). ``HIERE_SERVE_TEST_MODEL=runs/demo`` serves that model directory instead of
training a tiny one (for a screenshot with the demo model's facts).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from serve_support import REPO, document_text, train_bilstm

CHROMIUM = Path(os.environ.get("HIERE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = REPO / "docs" / "img" / "serve.png"
TOP_K = 15
START_SECONDS = 120  # model and spaCy load on a busy 2-core machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hiere_env() -> dict[str, str]:
    """This checkout's hiere for the subprocesses, offline, one thread."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    given = os.environ.get("HIERE_SERVE_TEST_MODEL")
    return Path(given) if given else train_bilstm(tmp_path_factory.mktemp("bilstm"))


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "hiere", "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
             "--device", "cpu", "--log-level", "warning"],
            stdout=log_file, stderr=subprocess.STDOUT, env=hiere_env(),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"hiere serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if json.load(answer)["status"] == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"hiere serve did not answer /health within {START_SECONDS} s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def hiere_extract(model_dir: Path, text: str) -> list[dict]:
    """The triples of the ``hiere extract`` command on a text."""
    done = subprocess.run([sys.executable, "-m", "hiere", "extract", str(model_dir), "--text", text, "--device", "cpu"],
                          capture_output=True, text=True, env=hiere_env(), timeout=300, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_the_page_shows_the_facts_of_hiere_extract_with_their_evidence(server, model_dir):
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does this)"
    from playwright.sync_api import sync_playwright

    text = document_text(451)
    expected = hiere_extract(model_dir, text)
    assert expected, "the model finds no fact in the text: nothing to show"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and page_errors.append(message.text))
            page.goto(server)
            page.wait_for_selector("#example option:nth-child(2)", state="attached")
            page.select_option("#example", index=1)  # a bundled example fills the text box
            with urllib.request.urlopen(f"{server}/examples") as answer:
                assert page.input_value("#text") == json.load(answer)[0]["text"]
            assert "bilstm" in page.text_content("#model-info")

            page.fill("#text", text)  # paste a text of our own and read it, the 15 best facts
            assert page.input_value("#example") == ""
            page.fill("#top-k", str(TOP_K))
            page.click("#extract")
            page.wait_for_selector("#relations tbody tr")
            rows = page.eval_on_selector_all(
                "#relations tbody tr",
                "rows => rows.map(r => [r.dataset.head, r.dataset.relation, r.dataset.tail, Number(r.dataset.score)])",
            )
            assert rows == [[t["head"], t["relation"], t["tail"], t["score"]] for t in expected[:TOP_K]]
            first_row = page.inner_text("#relations tbody tr:nth-child(1)")
            assert expected[0]["head"] in first_row and expected[0]["relation_name"] in first_row
            assert page.locator("#graph .edge").count() == min(TOP_K, len(expected))
            assert page.locator("#document mark.mention").count() > 0

            page.click("#relations tbody tr:nth-child(1)")  # select the best fact
            page.wait_for_selector("#document .sentence.evidence")
            highlighted = page.eval_on_selector_all("#document .sentence.evidence", "s => s.map(x => x.textContent)")
            assert highlighted == expected[0]["evidence"]
            listed = page.eval_on_selector_all("#explanation .evidence-sentence", "s => s.map(x => x.textContent)")
            assert listed == expected[0]["evidence"]
            assert page.locator("#document mark.role-head").count() >= 1
            assert page.locator("#document mark.role-tail").count() >= 1
            assert page.locator("#graph .edge.selected").count() == 1
            assert page_errors == []
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
