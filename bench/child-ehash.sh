# Sourced by bench/fleet.sh, bench/soak.sh and bench/reap.sh (not run on its own).
#
# CHILD_EHASH=N (env) runs the benchmark as on a host tuned with net.ipv4.tcp_child_ehash_entries=N
# (kernel >= 6.1, docs/operating.md): every network namespace made during the run gets a TCP hash
# table of its own of N buckets, so a sweep's pass over one of them walks N buckets instead of the
# host's whole table. The host's value is put back when the run ends (child_ehash_restore, from the
# script's cleanup), also on failure or Ctrl-C. Unset: the host as it is.
child_ehash_path=/proc/sys/net/ipv4/tcp_child_ehash_entries
child_ehash_old=""

# child_ehash_apply NAME: sets it for the run and says so, prefixed by NAME.
child_ehash_apply() {
  if [ -z "${CHILD_EHASH:-}" ]; then
    echo "$1: namespaces share the host's TCP hash ($(cat /proc/sys/net/ipv4/tcp_ehash_entries 2>/dev/null || echo "?") buckets; CHILD_EHASH unset)"
    return 0
  fi
  [[ "$CHILD_EHASH" =~ ^[0-9]+$ ]] && (( CHILD_EHASH <= 16777216 )) \
    || { echo "$1: CHILD_EHASH must be a number of buckets, 0..16777216 (got '$CHILD_EHASH')"; exit 2; }
  [ -w "$child_ehash_path" ] || { echo "$1: CHILD_EHASH needs kernel >= 6.1 ($child_ehash_path is missing)"; exit 2; }
  child_ehash_old=$(cat "$child_ehash_path")
  echo "$CHILD_EHASH" >"$child_ehash_path"
  echo "$1: namespaces made by this run have a TCP hash of their own, $(cat "$child_ehash_path") buckets (CHILD_EHASH; the host's has $(cat /proc/sys/net/ipv4/tcp_ehash_entries), and its setting $child_ehash_old comes back at the end)"
}

child_ehash_restore() {
  [ -z "$child_ehash_old" ] || echo "$child_ehash_old" >"$child_ehash_path" || true
}
