#!/usr/bin/env python3
"""Mutation checks: applies each deliberate bug of scripts/mutants_list.py,
one at a time, to a scratch copy of the tree, rebuilds it, runs the tests
meant to catch it and prints a table: caught by which test, or NOT CAUGHT.

    scripts/mutants.py                 # every mutant
    scripts/mutants.py ID...           # only these
    scripts/mutants.py --list          # what the list holds
    scripts/mutants.py --markdown      # the table as docs/testing.md carries it
    scripts/mutants.py --check         # each mutant still applies (in the suite as
                                       # `mutants.apply`): its `before` occurs once

The scratch copy lives in $SVE_MUTANTS_DIR (default /tmp/sve-mutants); it is
refreshed from the working tree at each run and its build is kept, so a run
recompiles only the mutated files (ccache shares objects with build/).
Exit status 1 when any mutant is not caught or does not build.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from mutants_list import MUTANTS  # noqa: E402


def sh(cmd, cwd, timeout=None, env=None):
    return subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), capture_output=True,
                          text=True, errors="replace", timeout=timeout, env=env)


def refresh(scratch):
    """The scratch source equals the working tree (tracked and untracked files)."""
    src = os.path.join(scratch, "src")
    os.makedirs(src, exist_ok=True)
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], ROOT).stdout.split()
    keep = set(files)
    for f in files:
        a, b = os.path.join(ROOT, f), os.path.join(src, f)
        if not os.path.isfile(a):
            continue
        os.makedirs(os.path.dirname(b), exist_ok=True)
        if not os.path.exists(b) or open(a, "rb").read() != open(b, "rb").read():
            # A changed file gets a new time (not the original's, as copy2
            # would keep): else an object built from its previous version in
            # the scratch build may look newer, and is not rebuilt.
            shutil.copy(a, b)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if not (dirpath == src and d == "build")]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            if rel not in keep:
                os.remove(os.path.join(dirpath, name))
    return src


def build(src):
    r = sh(["scripts/build.sh", "build"], src, timeout=3600)
    return r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def failing_tests(src, regex, timeout):
    """Runs the CTest entries matching `regex`; returns (ran, failed names)."""
    r = sh(["ctest", "-R", regex, "-j2", "--timeout", str(timeout), "--output-on-failure"],
           os.path.join(src, "build"), timeout=timeout * 4 + 120)
    failed = []
    ran = 0
    for line in r.stdout.splitlines():
        if " Test #" in line or "Test  #" in line:
            ran += 1
            if "Passed" not in line:
                failed.append(line.split(":", 1)[1].split("...")[0].strip() if ":" in line else line)
    return ran, failed


def run_one(src, m):
    path = os.path.join(src, m["file"])
    original = open(path).read()
    count = original.count(m["before"])
    if count != 1:
        return "STALE", f"`before` found {count} times in {m['file']}", 0
    started = time.time()
    try:
        open(path, "w").write(original.replace(m["before"], m["after"]))
        ok, log = build(src)
        if not ok:
            return "NO BUILD", log.strip().splitlines()[-1] if log.strip() else "", time.time() - started
        ran, failed = failing_tests(src, m["tests"], m.get("timeout", 300))
        if ran == 0:
            return "NO TESTS", m["tests"], time.time() - started
        if failed:
            return "caught", ", ".join(failed[:3]) + (" …" if len(failed) > 3 else ""), time.time() - started
        return "NOT CAUGHT", f"{ran} tests passed", time.time() - started
    finally:
        open(path, "w").write(original)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ids", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if not args.ids or m["id"] in args.ids]
    if args.check:
        # A mutant whose code has moved on applies to nothing and proves
        # nothing: the list must follow the code.
        stale = []
        for m in chosen:
            with open(os.path.join(ROOT, m["file"])) as f:
                n = f.read().count(m["before"])
            if n != 1:
                stale.append(f"{m['id']}: `before` occurs {n} times in {m['file']}")
        print("\n".join(stale) if stale else f"{len(chosen)} mutants apply")
        return 1 if stale else 0
    if args.list:
        for m in chosen:
            print(f"{m['id']:28} {m['file']:36} {m['why']}")
        return 0
    scratch = os.environ.get("SVE_MUTANTS_DIR", "/tmp/sve-mutants")
    src = refresh(scratch)
    t0 = time.time()
    ok, log = build(src)
    if not ok:
        print("the unmutated scratch copy does not build:\n" + log)
        return 2
    rows = []
    for m in chosen:
        verdict, detail, secs = run_one(src, m)
        rows.append((m, verdict, detail, secs))
        print(f"{m['id']:28} {verdict:10} {secs:6.0f}s  {detail}", flush=True)
    build(src)  # leave the scratch build unmutated
    bad = [r for r in rows if r[1] != "caught"]
    total = time.time() - t0
    print(f"\n{len(rows) - len(bad)} of {len(rows)} mutants caught in {total / 60:.1f} min")
    if args.markdown:
        print("\n| mutant | file | the bug | verdict | caught by |\n|---|---|---|---|---|")
        for m, verdict, detail, _ in rows:
            print(f"| `{m['id']}` | `{m['file']}` | {m['why']} | {verdict} | {detail} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
