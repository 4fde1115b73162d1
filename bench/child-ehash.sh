# Sourced by bench/fleet.sh, bench/soak.sh and bench/reap.sh (not run on its own).
#
# CHILD_EHASH=N (env) runs the benchmark as on a host tuned with net.ipv4.tcp_child_ehash_entries=N
# (kernel >= 6.1, docs/operating.md#a-tcp-hash-table-per-namespace): every network namespace the
# run makes gets a TCP hash table of its own of N buckets, so a sweep's pass over one of them walks N
# buckets instead of the host's whole table. The host's own setting is left alone: the setting is
# made in a namespace of the run (TAGzparent: no benchmark's own names start with z, so reap.sh's
# delete of one kind, `del_netns p`, leaves it), and the run's namespaces are made from inside it
# (nsenter --net; the kernel sizes a new namespace's table from its creator's setting), as
# bench/load.sh does. The C# benchmarks read SOCKETREAPER_BENCH_NETNS_PARENT for the same.
# Unset: the namespaces share the host's table, as `ip netns add` makes them.
child_ehash_parent=""

# child_ehash_apply NAME TAG: makes TAGzparent when CHILD_EHASH is set, and says which tables the run's namespaces get.
child_ehash_apply() {
  if [ -z "${CHILD_EHASH:-}" ]; then
    echo "$1: the run's namespaces share the host's TCP hash ($(cat /proc/sys/net/ipv4/tcp_ehash_entries 2>/dev/null || echo "?") buckets; CHILD_EHASH unset)"
    return 0
  fi
  [[ "$CHILD_EHASH" =~ ^[0-9]+$ ]] && (( CHILD_EHASH >= 1 && CHILD_EHASH <= 16777216 )) \
    || { echo "$1: CHILD_EHASH must be a number of buckets, 1..16777216 (got '$CHILD_EHASH')"; exit 2; }
  [ -e /proc/sys/net/ipv4/tcp_child_ehash_entries ] || { echo "$1: CHILD_EHASH needs kernel >= 6.1 (no net.ipv4.tcp_child_ehash_entries)"; exit 2; }
  ip netns add "$2zparent"
  ip netns exec "$2zparent" sysctl -qw "net.ipv4.tcp_child_ehash_entries=$CHILD_EHASH"
  child_ehash_parent=/run/netns/$2zparent
  export SOCKETREAPER_BENCH_NETNS_PARENT=$child_ehash_parent
  netns_add "$2zprobe"
  echo "$1: the run's namespaces have a TCP hash of their own, $(ip netns exec "$2zprobe" cat /proc/sys/net/ipv4/tcp_ehash_entries) buckets (CHILD_EHASH; the host's has $(cat /proc/sys/net/ipv4/tcp_ehash_entries) and its setting is left alone)"
  ip netns del "$2zprobe"
}

# netns_add NAME: `ip netns add NAME`, from inside the run's parent namespace when there is one.
netns_add() {
  if [ -n "$child_ehash_parent" ]; then
    nsenter --net="$child_ehash_parent" ip netns add "$1"
  else
    ip netns add "$1"
  fi
}
