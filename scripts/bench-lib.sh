# Shared by scripts/bench.sh, bench-s3.sh and bench-redis.sh (sourced, not run). measure needs $work.

# install_missing PACKAGE...: apt-get install them (as root, or with sudo); nothing when none.
install_missing() {
  [ $# -gt 0 ] || return 0
  local SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# measure CMD...: runs CMD under /usr/bin/time -v; prints "wall_s cpu_s tree_peak_rss_kib own_peak_rss_kib"
# (own = the top process's VmHWM, polled from /proc until it exits: for pgbackup this excludes
# its pg_dump child, which /usr/bin/time's maximum would include).
measure() {
  local log=$work/time.log hwm=0 pid cur
  /usr/bin/time -v -o "$log" "$@" >/dev/null &
  local tpid=$!
  while kill -0 "$tpid" 2>/dev/null; do
    pid=$(pgrep -P "$tpid" | head -n 1 || true)
    if [ -n "$pid" ]; then
      cur=$(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ -n "$cur" ] && [ "$cur" -gt "$hwm" ] && hwm=$cur
    fi
    sleep 0.05
  done
  wait "$tpid"
  local wall rss cpu
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$log" |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  cpu=$(awk -F': ' '/User time|System time/{s+=$2} END{print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$log")
  echo "$wall $cpu $rss $hwm"
}

# median CMD...: measure CMD $BENCH_RUNS times (default 3); print the run with the median wall time
median() {
  local i rows=()
  for ((i = 0; i < ${BENCH_RUNS:-3}; i++)); do rows+=("$(measure "$@")"); done
  printf '%s\n' "${rows[@]}" | sort -n -k1,1 | sed -n "$(( (${#rows[@]} + 1) / 2 ))p"
}

