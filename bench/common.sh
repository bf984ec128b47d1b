# Shared by the bench scripts (sourced).

wait_port() {  # port: until something listens there (10 s at most)
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}
