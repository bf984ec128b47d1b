#!/usr/bin/env python3
"""Fails on an #include that runs up the layers, or across two components of
one layer (facilities know their neighbours only through the I/O protocol).

Each folder is a component at one layer; a component includes only its own
files and those of components at lower layers. The table below is the
architecture (docs/architecture.md draws it); a new folder must be placed in
it. KNOWN lists the upward includes still to remove, each with its reason:
it may only shrink (an entry that no longer occurs fails the check too, so
that it is taken out of the list).

    scripts/check_layers.py            # run by CTest as `layers`
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# component (folder) -> layer; lower layers may not include higher ones.
LAYERS = {
    "util": 0,
    "hw": 1, "hw/device": 1, "hw/nvram": 1, "hw/port": 1, "hw/watchdog": 1,
    "faults": 1,                       # the chaos monkey's fault tables
    "io/buffer": 2, "io/pool": 2,      # memory: buffers and request contexts
    "admin": 2,                        # the admin wire: a line of JSON each way
    "model": 3,                        # the cluster's model and its pure edits
    "io": 4, "io/uring": 4, "io/reactor": 4, "io/channel": 4,  # the I/O protocol, a core's ring, the data channel
    "io/tls": 4,                       # TLS for the host ports (GnuTLS)
    "io/auth": 4,                      # the cluster key and MACs under it (libsodium)
    "io/iscsi": 4, "io/scsi": 4,       # iSCSI's and SCSI's protocol cores (no sockets)
    "facility": 5,                     # the one interface every facility implements
    "actors": 6, "actors/reactor": 6,  # the actor runtime: messages, pinned reactors,
                                       # the generic facility actor
    "virt": 7, "thin": 7, "flashcopy": 7, "cache": 7, "atomic": 7, "io/interconnect": 7, "io/nbd": 7, "backend": 7,  # the facilities
    "io/iscsi/port": 7,                # the iSCSI host port (a front end, as io/nbd)
    "cluster": 8, "cluster/protocol": 8, "cluster/rsm": 8, "cluster/state": 8,
    "cluster/host": 8,
    "node": 9, "node/chaos": 9,        # one node's assembly, admin routing, chaos
    "tools/sved": 10, "tools/svectl": 10, "tools/sve-bench": 10,
}

# Folders that make one component, whose parts may include each other.
COMPONENTS = {
    "hw": ["hw", "hw/device", "hw/nvram", "hw/port", "hw/watchdog"],
    "memory": ["io/buffer", "io/pool"],
    "io": ["io", "io/uring", "io/reactor", "io/channel", "io/tls", "io/auth", "io/iscsi",
           "io/scsi"],
    "actors": ["actors", "actors/reactor"],
    "cluster": ["cluster", "cluster/protocol", "cluster/rsm", "cluster/state", "cluster/host"],
    "node": ["node", "node/chaos"],
}


def component(folder):
    for name, folders in COMPONENTS.items():
        if folder in folders:
            return name
    return folder


# (including file, included file): why it is still there. May only shrink.
KNOWN = {
}

# The libraries of CMakeLists.txt: each component's library links only the
# libraries of lower layers (or its own component's, as `_actors` does).
# Interface libraries without sources name their folder here; the
# aggregates may link anything, and no component library may link them.
INTERFACE_FOLDERS = {"sve_facility": "facility"}
AGGREGATES = {"sve_base", "sve_runtime"}
LIBRARY = re.compile(r"(?:sve_library|add_library)\(\s*(sve_\w+)([^)]*)\)", re.S)
LINKS = re.compile(r"target_link_libraries\(\s*(sve_\w+)\s+(?:PUBLIC|INTERFACE|PRIVATE)([^)]*)\)",
                   re.S)


def check_links():
    text = open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8").read()
    text = re.sub(r"#[^\n]*", "", text)
    folders = {}
    for name, body in LIBRARY.findall(text):
        srcs = [w for w in body.split() if w.endswith(".cpp")]
        if srcs:
            folders[name] = {os.path.dirname(f) for f in srcs}
        elif name in INTERFACE_FOLDERS:
            folders[name] = {INTERFACE_FOLDERS[name]}
    problems = []
    for name, body in LINKS.findall(text):
        if name in AGGREGATES:
            continue
        if name not in folders:
            problems.append(f"CMakeLists.txt: library {name} has no folder (sources, or "
                            "INTERFACE_FOLDERS in scripts/check_layers.py)")
            continue
        for dep in (w for w in body.split() if w.startswith("sve_")):
            if dep in AGGREGATES or dep not in folders:
                problems.append(f"CMakeLists.txt: {name} links {dep}, which is no component")
                continue
            for src in folders[name]:
                for dst in folders[dep]:
                    if src not in LAYERS or dst not in LAYERS:
                        continue  # reported with the includes
                    if component(src) == component(dst) or LAYERS[dst] < LAYERS[src]:
                        continue
                    problems.append(f"CMakeLists.txt: {name} ({src}, layer {LAYERS[src]}) links "
                                    f"{dep} ({dst}, layer {LAYERS[dst]}): up or across the layers")
    return problems


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    files = subprocess.run(["git", "ls-files", "*.cpp", "*.hpp"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    problems, seen = [], set()
    for f in files:
        if f.startswith("tests/") or f.startswith("bench/"):
            continue
        src = os.path.dirname(f)
        if src not in LAYERS:
            problems.append(f"{f}: folder '{src}' has no layer in scripts/check_layers.py")
            continue
        text = open(os.path.join(ROOT, f), encoding="utf-8", errors="replace").read()
        for inc in INCLUDE.findall(text):
            dst = os.path.dirname(inc)
            if dst not in LAYERS:
                if os.path.exists(os.path.join(ROOT, inc)):
                    problems.append(f"{f}: includes {inc}, whose folder has no layer")
                continue
            if component(src) == component(dst) or LAYERS[dst] < LAYERS[src]:
                continue
            if (f, inc) in KNOWN:
                seen.add((f, inc))
                continue
            how = "up" if LAYERS[dst] > LAYERS[src] else "across"
            problems.append(f"{f} (layer {LAYERS[src]}, {src}) includes {inc} "
                            f"(layer {LAYERS[dst]}, {dst}): {how} the layers")
    for stale in sorted(set(KNOWN) - seen):
        problems.append(f"{stale[0]} no longer includes {stale[1]}: take it out of KNOWN")
    problems += check_links()
    for p in problems:
        print(p)
    if problems:
        print(f"\n{len(problems)} layer problem(s); the layers are in scripts/check_layers.py")
        return 1
    print(f"layers: {len(files)} files checked, {len(KNOWN)} known upward includes left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
