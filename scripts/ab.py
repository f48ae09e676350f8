#!/usr/bin/env python3
"""A/B of two soakd sides, the seed's method (run through scripts/ab.sh).

Side A is the baseline, side B the candidate. Each run is a fresh soakd
process running one epoch of the profile's warm-up plus --secs seconds
(`soakd run --epochs 1 --epoch-secs N`); its figure is the mean throughput of
that epoch's samples after warm-up, read from the run's epochs.jsonl. Runs are interleaved in ABBA order (A B, B A, A B, ...)
so a slow drift of the machine (thermal, other load) hits both sides alike.

The verdict compares B's mean (or median, --stat) with A's:
GO at delta >= +1.0%, NO-GO at delta <= -1.0%, NEUTRAL between.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def die(msg):
    print(f"ab.sh: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="scripts/ab.sh",
        description="A/B two soakd sides (profiles or builds) with interleaved "
        "fresh-process runs; writes a markdown verdict under docs/perf/.",
        epilog="Examples:\n"
        "  scripts/ab.sh --a-profile balanced --b-profile speed-first\n"
        "  scripts/ab.sh --a-profile balanced --b-features hakmem/fast\n"
        "  scripts/ab.sh --a-bin old/soakd --b-bin new/soakd --runs 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for side, default in (("a", "balanced"), ("b", None)):
        s = side.upper()
        g = p.add_argument_group(f"side {s}" + (" (baseline)" if side == "a" else " (candidate)"))
        g.add_argument(f"--{side}-profile", metavar="NAME",
                       help=f"profile in config/ (default: {default or 'the same as A'})")
        g.add_argument(f"--{side}-config", metavar="FILE", help="profile file, instead of a name")
        g.add_argument(f"--{side}-bin", metavar="PATH",
                       help="soakd binary (default: release build of this tree)")
        g.add_argument(f"--{side}-features", metavar="FEATURES", default="",
                       help="cargo features for the release build, e.g. hakmem/fast")
        g.add_argument(f"--{side}-name", metavar="NAME", help="label in the result")
    p.add_argument("--runs", type=int, default=10, help="runs per side (default 10)")
    p.add_argument("--secs", type=int, default=30,
                   help="seconds measured in each run, after the profile's "
                   "warm-up (default 30)")
    p.add_argument("--go", type=float, default=1.0, help="GO at delta >= this %% (default 1.0)")
    p.add_argument("--nogo", type=float, default=-1.0,
                   help="NO-GO at delta <= this %% (default -1.0)")
    p.add_argument("--stat", choices=("mean", "median"), default="mean",
                   help="statistic the verdict compares (default mean)")
    p.add_argument("--title", help="heading of the result")
    p.add_argument("--out", metavar="FILE",
                   help="markdown result (default docs/perf/AB_<date>_<a>_vs_<b>.md)")
    args = p.parse_args(argv)
    if args.runs < 1:
        die("--runs must be at least 1")
    if args.secs < 1:
        die("--secs must be at least 1")
    if args.nogo >= args.go:
        die("--nogo must be below --go")
    return args


class Side:
    def __init__(self, args, side, other=None):
        def get(k):
            return getattr(args, f"{side}_{k}")

        self.key = side.upper()
        if get("config") and get("profile"):
            die(f"--{side}-config and --{side}-profile exclude each other")
        if get("config"):
            self.config = pathlib.Path(get("config")).resolve()
            self.profile = self.config.stem
        else:
            self.profile = get("profile") or (other.profile if other else "balanced")
            self.config = other.config if other and not get("profile") else ROOT / "config" / f"{self.profile}.toml"
        if not self.config.is_file():
            die(f"side {self.key}: no profile file {self.config}")
        self.features = get("features")
        if get("bin") and self.features:
            die(f"--{side}-bin and --{side}-features exclude each other")
        self.bin = pathlib.Path(get("bin")).resolve() if get("bin") else None
        self.name = get("name") or self.profile + (f"+{self.features}" if self.features else "")
        self.build = (f"prebuilt {self.bin}" if self.bin
                      else "release build" + (f", features {self.features}" if self.features else ""))
        self.warmup = 0
        self.values = []


def build(features, workdir):
    """Builds release soakd with `features` and copies it out, so two builds
    of the same tree with different features can both be kept."""
    cmd = ["cargo", "build", "--release", "-p", "soakd", "--bin", "soakd",
           "--message-format=json-render-diagnostics"]
    if features:
        cmd += ["--features", features]
    print(f"ab.sh: {' '.join(cmd)}", file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=False, text=True)
    if out.returncode != 0:
        die("cargo build failed")
    exe = None
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "soakd":
            exe = msg.get("executable") or exe
    if not exe:
        die("cargo reported no soakd executable")
    dest = workdir / ("soakd-" + (re.sub(r"[^A-Za-z0-9]+", "_", features) or "default"))
    shutil.copy2(exe, dest)
    return dest


def steady_mean(record):
    """Mean ops/s of the epoch's samples after warm-up."""
    xs = [s["ops_per_sec"] for s in record["samples"] if not s["warmup"]]
    if not xs:
        raise ValueError("no sample after warm-up: raise --secs above the profile's sample_secs")
    return statistics.fmean(xs)


def warmup_secs(side):
    """The profile's warm-up, from soakd's effective configuration (which also
    validates the profile before any run)."""
    out = subprocess.run([str(side.bin), "check-config", str(side.config)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        die(f"side {side.key}: invalid profile {side.config}:\n{out.stderr}")
    m = re.search(r"^warmup_secs = (\d+)$", out.stdout, re.M)
    if not m:
        die(f"side {side.key}: no warmup_secs in soakd check-config's output")
    return int(m.group(1))


def run_once(side, secs, workdir, index):
    out = workdir / f"{side.key}{index}"
    log = workdir / f"{side.key}{index}.log"
    secs += side.warmup
    cmd = [str(side.bin), "run", "--config", str(side.config), "--epochs", "1",
           "--epoch-secs", str(secs), "--out", str(out),
           # Port 0: runs never clash with a soakd already on the profile's port.
           "--listen", "127.0.0.1:0"]
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                timeout=secs + 120, check=False).returncode
        except subprocess.TimeoutExpired:
            die(f"run {side.key}{index} did not finish in {secs + 120}s; see {log}")
    if rc != 0:
        die(f"run {side.key}{index} exited {rc}: {' '.join(cmd)}\n{log.read_text()[-2000:]}")
    lines = (out / "epochs.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    if not record.get("complete"):
        die(f"run {side.key}{index}: its epoch is not complete")
    try:
        return steady_mean(record)
    except (KeyError, ValueError) as e:
        die(f"run {side.key}{index}: {e}")


def describe(values):
    mean = statistics.fmean(values)
    return {
        "mean": mean,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        # Population standard deviation / mean, as soakd's CV.
        "cv": statistics.pstdev(values) / mean if mean else float("nan"),
    }


def delta_pct(b, a):
    return (b - a) / a * 100.0


def verdict(delta, go, nogo):
    if delta >= go:
        return "GO"
    if delta <= nogo:
        return "NO-GO"
    return "NEUTRAL"


def slug(s):
    return re.sub(r"[^A-Za-z0-9.-]+", "-", s).strip("-") or "x"


def default_out(a, b):
    base = ROOT / "docs" / "perf" / f"AB_{datetime.date.today():%Y%m%d}_{slug(a.name)}_vs_{slug(b.name)}"
    out, n = base.with_suffix(".md"), 2
    # A second A/B of the same pair on the same day gets its own file.
    while out.exists():
        out, n = pathlib.Path(f"{base}_{n}.md"), n + 1
    return out


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
        return rev + (" (dirty)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(x):
    return f"{x:,.0f}"


def report(args, a, b, order, started):
    sa, sb = describe(a.values), describe(b.values)
    d_mean, d_median = delta_pct(sb["mean"], sa["mean"]), delta_pct(sb["median"], sa["median"])
    d = d_mean if args.stat == "mean" else d_median
    v = verdict(d, args.go, args.nogo)
    title = args.title or f"A/B: {a.name} vs {b.name}"
    lines = [
        f"# {title}",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} (local)",
        f"- Commit: {git_rev()}",
        f"- Host: {platform.node()}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        f"- A (baseline): `{a.name}`: profile {a.config.relative_to(ROOT) if a.config.is_relative_to(ROOT) else a.config}, {a.build}",
        f"- B (candidate): `{b.name}`: profile {b.config.relative_to(ROOT) if b.config.is_relative_to(ROOT) else b.config}, {b.build}",
        f"- Method: {args.runs} runs per side, interleaved ABBA, each a fresh soakd process running one "
        f"epoch of the profile's warm-up (A {a.warmup} s, B {b.warmup} s) + {args.secs} s; "
        "figure = mean throughput (ops/s) of the epoch's samples after warm-up",
        f"- Thresholds: GO at {args.go:+.1f}% or more, NO-GO at {args.nogo:+.1f}% or less, NEUTRAL between; "
        f"compared: {args.stat}",
        "",
        "| side | runs | mean ops/s | median ops/s | min | max | CV |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for side, s in ((a, sa), (b, sb)):
        lines.append(f"| {side.key} `{side.name}` | {len(side.values)} | {fmt(s['mean'])} | {fmt(s['median'])} "
                     f"| {fmt(s['min'])} | {fmt(s['max'])} | {s['cv'] * 100:.2f}% |")
    lines += [
        "",
        f"Delta (B vs A): mean {d_mean:+.2f}%, median {d_median:+.2f}%",
        "",
        f"Verdict: {v}",
        "",
        "## Runs",
        "",
        "| # | side | ops/s |",
        "| ---: | --- | ---: |",
    ]
    lines += [f"| {i + 1} | {k} | {fmt(x)} |" for i, (k, x) in enumerate(order)]
    return "\n".join(lines) + "\n", v, d


def main(argv):
    args = parse_args(argv)
    a = Side(args, "a")
    b = Side(args, "b", other=a)
    started = datetime.datetime.now()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="hakmem-ab-"))
    try:
        built = {}
        for side in (a, b):
            if side.bin is None:
                if side.features not in built:
                    built[side.features] = build(side.features, workdir)
                side.bin = built[side.features]
            if not os.access(side.bin, os.X_OK):
                die(f"side {side.key}: {side.bin} is not an executable")
            side.warmup = warmup_secs(side)
        order = []
        for r in range(args.runs):
            for side in ((a, b) if r % 2 == 0 else (b, a)):
                x = run_once(side, args.secs, workdir, r + 1)
                side.values.append(x)
                order.append((side.key, x))
                print(f"ab.sh: run {r + 1}/{args.runs} {side.key} ({side.name}): {fmt(x)} ops/s",
                      file=sys.stderr)
        text, v, d = report(args, a, b, order, started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = pathlib.Path(args.out) if args.out else default_out(a, b)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"ab.sh: {v} ({args.stat} {d:+.2f}%); result in {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
