# Shared by the bench scripts (sourced).

wait_port() {  # port: until something listens there (10 s at most)
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}

fio_row() {  # label job-name fio-json-file: one markdown row (IOPS, MiB/s, p50, p99)
  python3 - "$@" <<'PY'
import json, sys
label, name, path = sys.argv[1:]
job = json.load(open(path))["jobs"][0]
side = job["read"] if job["read"]["io_bytes"] else job["write"]
pct = side["clat_ns"].get("percentile", {})
print(f"| {label} | {name} | {side['iops']:.0f} | {side['bw_bytes'] / 2**20:.1f} | "
      f"{pct.get('50.000000', 0) / 1000:.0f} | {pct.get('99.000000', 0) / 1000:.0f} |")
PY
}
