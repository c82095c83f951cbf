"""Bounded fuzzing of the real ``hiere`` commands (issue 15): N generated cases, each with a timeout.

    python benchmarks/cli_fuzz.py --cases 1000 --timeout 60 --out runs/cli_fuzz.json

Each case is an argv for ``hiere`` (``extract``, ``score``, ``predict``, ``evaluate``, ``train``, or junk)
plus the files and standard input it names: generated text (random Unicode with lone surrogates and
control characters, HTML, very long tokens, no entities, many entities, real Re-DocRED sentences), real
Re-DocRED / NYT10 records with one field replaced, bytes spliced into files, deeply nested JSON, odd
option values and bad configs. A case is

* ``ok``: exit 0, and every stdout line of ``extract`` (jsonl) / the stdout of ``score`` is valid JSON;
* ``rejected``: exit 2 with exactly one ``error:`` line on stderr and no traceback;
* ``crash``: anything else (an exception escaping ``main``, a traceback, another exit code, bad output);
* ``hang``: no answer within ``--timeout`` seconds.

Starting Python and torch per case takes seconds, so cases run in a long-lived worker process that calls
``hiere.cli.main(argv)`` with the case's stdin, stdout and stderr (UTF-8 byte streams, as a terminal's
would be); the worker is killed and restarted after a hang. The worker keeps one spaCy model object
(``spacy.load`` is cached): everything else (loading the model directory, reading files) runs as in a
fresh process. ``--subprocess K`` also runs K of the cases as real ``python -m hiere`` processes and
reports how often the two ways agree. Train cases use only settings that must be rejected before
training, so no case trains a model; the model for ``extract``/``predict``/``evaluate`` is a bilstm
trained for 2 steps (``--model DIR`` to give one).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import ROOT, machine

DATA = ROOT.parent / "shared" / "data"
REDOCRED = DATA / "redocred" / "dev_revised.json"
REL_INFO = DATA / "redocred" / "rel_info.json"
NYT10 = DATA / "nyt10" / "nyt10sub_val10.txt"
OUTCOMES = ("ok", "rejected", "crash", "hang")

# ----------------------------------------------------------------------------------------------- inputs

ODD = ["\udcff", "\ud800", "\x00", "\x07", "\x1b[31m", "\u2028", "\ufeff", "\ufffd", "\u200b", "\r", "\t", "\x85"]
HTML = ["<p>", "</p>", "<a href='https://x.org'>link</a>", "&amp;", "<script>alert(1)</script>", "<br/>", "<!--"]
NAMES = ["Paris", "London", "Marie Curie", "IBM", "1999", "Berlin", "NASA", "the United States", "Warsaw"]


class Generator:
    """Deterministic case maker (one ``random.Random`` seeded by ``--seed``) over real data slices."""

    def __init__(self, seed: int, folder: Path, model_dir: Path):
        self.random, self.folder, self.model_dir = random.Random(seed), folder, model_dir
        self.docs = json.loads(REDOCRED.read_text(encoding="utf-8"))[:8]
        self.sentences = [" ".join(s) for doc in self.docs for s in doc["sents"]]
        self.bag_lines = NYT10.read_text(encoding="utf-8").splitlines()[:20]
        self.gold = self.write("gold.json", json.dumps(self.docs[:4]))
        self.bag_gold = self.write("bag_gold.txt", "\n".join(self.bag_lines) + "\n")
        self.config = ROOT / "configs" / "bilstm_redocred.yaml"
        self.counter = 0

    def write(self, name: str, data: str | bytes) -> str:
        path = self.folder / name
        path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return str(path)

    def new_file(self, suffix: str, data: str | bytes) -> str:
        self.counter += 1
        return self.write(f"case{self.counter}{suffix}", data)

    # --- text
    def text(self) -> str:
        pick = self.random.random
        parts = []
        for _ in range(self.random.randint(0, 8)):
            roll = pick()
            if roll < 0.3:
                parts.append(self.random.choice(self.sentences))
            elif roll < 0.45:
                parts.append("".join(chr(self.random.randint(1, 0x2FFFF)) for _ in range(self.random.randint(1, 40))))
            elif roll < 0.6:
                parts.append("".join(self.random.choice(ODD) for _ in range(self.random.randint(1, 4))))
            elif roll < 0.7:
                parts.append(self.random.choice(HTML))
            elif roll < 0.75:
                parts.append("x" * self.random.randint(100, 20_000))  # a very long token
            elif roll < 0.85:
                parts.append(", ".join(self.random.choice(NAMES) for _ in range(self.random.randint(2, 150))))
            elif roll < 0.9:
                parts.append("\n\n")
            else:
                parts.append(" ".join(self.random.choice(["the", "Paris", "and"]) for _ in range(3000)))
        return " ".join(parts)

    def splice(self, data: bytes) -> bytes:
        """Random bytes put into, or cut out of, ``data``."""
        if not data or self.random.random() < 0.5:
            junk = bytes(self.random.randint(0, 255) for _ in range(self.random.randint(1, 8)))
            at = self.random.randint(0, len(data))
            return data[:at] + junk + data[at:]
        at = self.random.randint(0, len(data))
        return data[:at]

    def mutate(self, value: Any) -> Any:
        """``value`` with one node replaced by a generated value (or deleted)."""
        value = json.loads(json.dumps(value))
        node = value
        for _ in range(6):
            if not isinstance(node, dict | list) or not node:
                break
            key = self.random.choice(list(node) if isinstance(node, dict) else range(len(node)))
            child = node[key]
            if not isinstance(child, dict | list) or not child or self.random.random() < 0.4:
                if self.random.random() < 0.25:
                    del node[key]
                else:
                    node[key] = self.random.choice([None, -1, 0, 10**9, 2.5, float("nan"), "", "\udcff", [], {},
                                                    "P17", True, [0, 0], [[1]], "x" * 50])
                return value
            node = child
        return value

    def deep_json(self) -> str:
        depth = self.random.choice([100, 5_000, 200_000])
        return "[" * depth + "]" * depth

    # --- cases: (argv, stdin bytes or None)
    def case(self) -> tuple[list[str], bytes | None]:
        kind = self.random.choices(
            ["extract_text", "extract_file", "extract_options", "score", "score_bag", "predict", "evaluate",
             "train", "junk"], weights=[25, 25, 10, 12, 5, 8, 3, 8, 4])[0]
        return getattr(self, f"case_{kind}")()

    def case_extract_text(self) -> tuple[list[str], bytes | None]:
        text = self.text() or self.random.choice(self.sentences)
        return ["extract", str(self.model_dir), "--text", text], None

    def case_extract_file(self) -> tuple[list[str], bytes | None]:
        lines = [self.text() for _ in range(self.random.randint(1, 5))]
        form = self.random.choice(["txt", "jsonl", "json", "stdin"])
        if form == "jsonl":
            with_entities = {"text": "", "entities": [{"start": 0, "end": 5}]}
            records = [json.dumps(self.random.choice([line, {"text": line, "title": self.text()[:20]},
                                                      self.mutate({**with_entities, "text": line})]))
                       for line in lines]
            if self.random.random() < 0.3:
                records.insert(self.random.randint(0, len(records)), self.random.choice(["{broken", self.deep_json()]))
            data = "\n".join(records).encode("utf-8", "surrogatepass")
        elif form == "json":
            text = json.dumps(lines) if self.random.random() < 0.8 else self.deep_json()
            data = text.encode("utf-8", "surrogatepass")
        else:
            data = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "surrogatepass")
        if self.random.random() < 0.3:
            data = self.splice(data)
        if form == "stdin":
            return ["extract", str(self.model_dir), "-", "--no-progress"], data
        return ["extract", str(self.model_dir), self.new_file(f".{form}", data), "--no-progress"], None

    def case_extract_options(self) -> tuple[list[str], bytes | None]:
        option = self.random.choice(["--batch-size", "--threshold", "--device", "--max-chars", "--window-tokens",
                                     "--format", "--input-format", "--entities", "--bogus"])
        value = self.random.choice(["0", "-1", "1", "0.5", "nan", "inf", "gpu", "cuda", "cuda:3", "cpu", "ten", "",
                                    "table", "1e9", "99999999999999999999", "\udcff", self.new_file(".json", "[{]")])
        return ["extract", str(self.model_dir), "--text", self.random.choice(self.sentences), option, value], None

    def case_score(self) -> tuple[list[str], bytes | None]:
        records = [{"title": doc["title"], "h_idx": f["h"], "t_idx": f["t"], "r": f["r"], "score": 0.5}
                   for doc in self.docs[:4] for f in doc["labels"][:3]]
        roll = self.random.random()
        if roll < 0.7:
            data = json.dumps(self.mutate(records)).encode("utf-8", "surrogatepass")
        elif roll < 0.85:
            data = self.splice(json.dumps(records).encode())
        else:
            data = self.deep_json().encode()
        gold = self.gold
        if self.random.random() < 0.15:
            gold = self.new_file(".json", self.random.choice(["[]", json.dumps([self.mutate(self.docs[0])])]))
        return ["score", gold, self.new_file(".json", data)], None

    def case_score_bag(self) -> tuple[list[str], bytes | None]:
        records = [{"h": json.loads(line)["h"]["id"], "t": json.loads(line)["t"]["id"],
                    "relation": json.loads(line)["relation"], "score": 0.3} for line in self.bag_lines[:8]]
        data = json.dumps(self.mutate(records)).encode("utf-8", "surrogatepass")
        return ["score", "--task", "bag", self.bag_gold, self.new_file(".json", data)], None

    def case_predict(self) -> tuple[list[str], bytes | None]:
        docs = [self.mutate(self.docs[4]) if self.random.random() < 0.7 else self.docs[5]]
        data = json.dumps(docs).encode("utf-8", "surrogatepass")
        if self.random.random() < 0.2:
            data = self.splice(data)
        return ["predict", str(self.model_dir), self.new_file(".json", data), "-o",
                str(self.folder / f"pred{self.counter}.json")], None

    def case_evaluate(self) -> tuple[list[str], bytes | None]:
        data = json.dumps([self.mutate(self.docs[6])]).encode("utf-8", "surrogatepass")
        return ["evaluate", str(self.model_dir), self.new_file(".json", data)], None

    def case_train(self) -> tuple[list[str], bytes | None]:
        bad = self.random.choice([
            "trainr.lr=0.1", "data.tset=x.json", "trainer.lr=-0.001", "trainer.epochs=0", "trainer.schedule=cosine",
            "trainer.lr=fast", "trainer.epochs=ten", "trainer.grad_accumulation=0", "model.dropout=2",
            "trainer.precision=fp8", "data.test=missing.json", "model.hidden=0", "trainer.device=gpu",
            "model.name=[1]", "trainer.lr=[", "trainer=5", "data.train=7", "model.nosuch=1",
            f"trainer.{self.random.choice(['lr', 'epochs', 'seed'])}={self.random.choice(['.nan', '{a: 1}', '[]'])}",
        ])
        roll = self.random.random()
        if roll < 0.7:
            config = str(self.config)
        elif roll < 0.8:
            config = self.new_file(".yaml", self.splice(self.config.read_bytes()))
        elif roll < 0.9:
            config = str(self.folder)
        else:
            config = self.new_file(".yaml", bytes(self.random.randint(0, 255) for _ in range(64)))
        return ["train", config, "-o", str(self.folder / f"train{self.counter}"), "--set", bad], None

    def case_junk(self) -> tuple[list[str], bytes | None]:
        words = ["extract", "score", "train", "--text", "-o", "--set", "x", "", "--help-me", "\udcff", "-", "--"]
        return [self.random.choice(words) for _ in range(self.random.randint(0, 4))], None


# ----------------------------------------------------------------------------------------------- judging


def judge(argv: list[str], code: int | None, out: str, err: str, error: str | None) -> tuple[str, str]:
    """-> (outcome, why) for one finished case."""
    if error is not None:
        return "crash", error
    if "Traceback" in err:
        return "crash", "traceback on stderr"
    if code == 0:
        command = argv[0] if argv else ""
        if command == "extract" and "--format" not in argv:
            for line in out.splitlines():
                try:
                    json.loads(line)
                except ValueError:
                    return "crash", f"not a JSON line on stdout: {line[:80]!r}"
        if command in ("score", "evaluate") and "--help" not in argv:
            try:
                json.loads(out)
            except ValueError:
                return "crash", "stdout is not JSON"
        return "ok", ""
    if code == 2:
        errors = [line for line in err.splitlines() if "error:" in line]
        if len(errors) == 1:
            return "rejected", errors[0][:200]
        return "crash", f"exit 2 with {len(errors)} error lines"
    return "crash", f"exit code {code}"


# ----------------------------------------------------------------------------------------------- worker


def worker() -> None:
    """Read cases (JSON lines) on stdin, run ``hiere.cli.main`` on each, answer on the original stdout."""
    import functools

    import spacy

    from hiere import cli

    spacy.load = functools.lru_cache(maxsize=4)(spacy.load)
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    os.dup2(2, 1)  # anything written to file descriptor 1 directly cannot garble the answers
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in requests:
        case = json.loads(line)
        stdin = base64_decode(case["stdin"])
        out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
        case_streams = (io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="surrogateescape"),
                        io.TextIOWrapper(out_bytes, encoding="utf-8", write_through=True),
                        io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace", write_through=True))
        streams = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = case_streams
        code, error = None, None
        try:
            code = cli.main(case["argv"])
        except BaseException as caught:  # noqa: BLE001 (whatever escapes main is what we count)
            error = f"{type(caught).__name__}: {caught}"[:300]
        finally:
            sys.stdin, sys.stdout, sys.stderr = streams
            for stream in case_streams:
                try:
                    stream.flush()
                except ValueError:  # closed by the command
                    pass
        out, err = out_bytes.getvalue().decode("utf-8", "replace"), err_bytes.getvalue().decode("utf-8", "replace")
        outcome, why = judge(case["argv"], code, out, err, error)
        answer = {"outcome": outcome, "why": why, "err": err[-5_000:]}
        print(json.dumps(answer), file=answers, flush=True)


def base64_encode(data: bytes | None) -> str:
    import base64

    return base64.b64encode(data or b"").decode()


def base64_decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


class Worker:
    """The long-lived worker process: run a case with a timeout; killed and restarted after a hang."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self.process = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                        cwd=str(ROOT), text=True, bufsize=1)
        ready = self._answer(300)
        if ready is None or not ready.get("ready"):
            raise RuntimeError("the fuzz worker did not start")

    def _answer(self, timeout: float) -> dict | None:
        assert self.process is not None and self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else {"outcome": "crash", "why": "the worker died", "err": ""}

    def run(self, argv: list[str], stdin: bytes | None, timeout: float) -> dict | None:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps({"argv": argv, "stdin": base64_encode(stdin)}) + "\n")
        self.process.stdin.flush()
        answer = self._answer(timeout)
        if answer is None or answer.get("why") == "the worker died":
            self.stop()
        return answer

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def run_subprocess(argv: list[str], stdin: bytes | None, timeout: float) -> dict | None:
    """The same case as a real ``python -m hiere`` process; ``{"skipped": ...}`` for an argv no process can
    be given (a NUL byte, a surrogate outside U+DC80-U+DCFF, an argument over the kernel's 128 KiB)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        encoded = [arg.encode("utf-8", "surrogateescape") for arg in argv]
    except UnicodeEncodeError:
        return {"skipped": "a surrogate that no argv can hold"}
    try:
        done = subprocess.run([sys.executable, "-m", "hiere", *encoded], input=stdin or b"", capture_output=True,
                              timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return None
    except (ValueError, OSError) as error:
        return {"skipped": str(error)}
    return {"code": done.returncode, "error": None, "out": done.stdout.decode("utf-8", "replace"),
            "err": done.stderr.decode("utf-8", "replace")}


# ----------------------------------------------------------------------------------------------- main


def tiny_model(folder: Path) -> Path:
    """bilstm (hidden 16) trained for 2 steps on 4 Re-DocRED documents: a real model directory in seconds."""
    from hiere.config import load_config
    from hiere.training.trainer import train

    config = load_config(ROOT / "configs" / "bilstm_redocred.yaml", [
        f"data.train={REDOCRED}", "data.train_slice=[0,4]", f"data.dev={REDOCRED}", "data.dev_slice=[4,6]",
        f"data.relations={REL_INFO}", "trainer.epochs=1", "trainer.max_steps=2", "trainer.progress=false",
        "model.hidden=16",
    ])
    return train(config, folder / "model")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases to run (default 1000)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it is a hang")
    parser.add_argument("--out", help="write the counts and every crash/hang case to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subprocess", type=int, default=20, dest="n_subprocess",
                        help="also run this many of the cases as real `python -m hiere` processes (default 20)")
    parser.add_argument("--model", help="model directory for extract/predict/evaluate (default: a tiny bilstm)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return 0
    from tqdm import tqdm

    folder = Path(tempfile.mkdtemp(prefix="hiere_cli_fuzz_"))
    started = time.time()
    try:
        model_dir = Path(args.model) if args.model else tiny_model(folder)
        generator = Generator(args.seed, folder, model_dir)
        cases = [generator.case() for _ in range(args.cases)]
        counts: Counter[str] = Counter()
        by_command: dict[str, Counter[str]] = {}
        failures, outcomes = [], []
        pool = Worker()
        try:
            for argv, stdin in tqdm(cases, desc="cli fuzz", unit="case", file=sys.stderr):
                case_start = time.time()
                answer = pool.run(argv, stdin, args.timeout)
                if answer is None:
                    outcome, why = "hang", f"no answer in {args.timeout:g} s"
                else:
                    outcome, why = answer["outcome"], answer["why"]
                outcomes.append(outcome)
                counts[outcome] += 1
                by_command.setdefault(argv[0] if argv else "(none)", Counter())[outcome] += 1
                if outcome in ("crash", "hang"):
                    failures.append({"argv": [a[:300] for a in argv], "stdin_bytes": len(stdin or b""),
                                     "outcome": outcome, "why": why, "seconds": round(time.time() - case_start, 1),
                                     "stderr": (answer or {}).get("err", "")[-1500:]})
        finally:
            pool.stop()
        sample = random.Random(args.seed + 1).sample(range(len(cases)), min(args.n_subprocess, len(cases)))
        agree, sub_counts = 0, Counter()
        for index in tqdm(sample, desc="subprocess sample", unit="case", file=sys.stderr):
            argv, stdin = cases[index]
            answer = run_subprocess(argv, stdin, args.timeout)
            if answer is not None and "skipped" in answer:
                sub_counts["skipped"] += 1
                continue
            outcome = "hang" if answer is None else judge(argv, answer["code"], answer["out"], answer["err"], None)[0]
            sub_counts[outcome] += 1
            agree += outcome == outcomes[index]
        report = {
            "command": " ".join(sys.argv),
            "machine": machine(),
            "cases": len(cases),
            "timeout_seconds": args.timeout,
            "seed": args.seed,
            "seconds": round(time.time() - started, 1),
            "counts": {outcome: counts[outcome] for outcome in OUTCOMES},
            "by_command": {command: dict(c) for command, c in sorted(by_command.items())},
            "subprocess_sample": {"cases": len(sample), "counts": {o: sub_counts[o] for o in (*OUTCOMES, "skipped")},
                                  "same_outcome_as_worker": agree},
            "failures": failures,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = " ".join(f"{outcome} {report['counts'][outcome]}" for outcome in OUTCOMES)
    print(f"hiere CLI fuzz: {report['cases']} cases, timeout {args.timeout:g} s, {report['seconds']} s: {summary}")
    sub = report["subprocess_sample"]
    print(f"  real processes: {sub['cases']} of the cases: "
          + " ".join(f"{o} {sub['counts'][o]}" for o in (*OUTCOMES, "skipped"))
          + f"; same outcome as in the worker: {sub['same_outcome_as_worker']}/"
          f"{sub['cases'] - sub['counts']['skipped']}"
          + " (skipped: an argv no process can be given)")
    for command, command_counts in report["by_command"].items():
        print(f"  {command}: " + " ".join(f"{o} {command_counts.get(o, 0)}" for o in OUTCOMES))
    for failure in failures[:20]:
        print(f"  {failure['outcome']}: hiere {' '.join(a[:60] for a in failure['argv'])!r}: {failure['why']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=True) + "\n")
    return 0 if counts["crash"] == counts["hang"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
