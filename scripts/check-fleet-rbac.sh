#!/usr/bin/env bash
# Checks the RBAC set-up of docs/fleet.md against a real etcd: a throwaway one (TLS, client
# certificate auth) on free loopback ports with its data under /tmp, stopped and deleted at exit.
#
#   scripts/check-fleet-rbac.sh
#
# It runs the doc's two etcdctl blocks (<!-- rbac:once -->, <!-- rbac:host -->) as they are, as
# root, then checks as the users b1, b2 and socketreaper-admin that every write the doc allows
# works and every other is refused with "permission denied" — b10's keys, another host's lease.
# Needs etcd, etcdctl (3.4 or later) and openssl. Exits 0 only if all pass; the last line is a
# one-line summary.
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf 'check-fleet-rbac: %s\n' "$*"; }
for tool in etcd etcdctl openssl python3; do
  command -v "$tool" >/dev/null || { say "FAIL: $tool is not installed"; exit 2; }
done

tmp=$(mktemp -d /tmp/srt-etcd.XXXXXX)
etcd_pid=
cleanup() {
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- certificates: a CA, the server's (127.0.0.1), one client certificate per user (CN = user) ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=srt-fleet-ca \
  -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>/dev/null || { say "FAIL: openssl CA"; exit 2; }
cert() { # NAME CN EXTENSIONS
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$tmp/$1-key.pem" -out "$tmp/$1.csr" 2>/dev/null &&
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial -days 1 \
    -extfile <(printf '%s\n' "$3") -out "$tmp/$1.pem" 2>/dev/null
}
cert server srt-etcd "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth" || { say "FAIL: openssl server certificate"; exit 2; }
for user in root socketreaper-admin b1 b2 b10; do
  cert "$user" "$user" "extendedKeyUsage=clientAuth" || { say "FAIL: openssl certificate for $user"; exit 2; }
done

# --- etcd on two free loopback ports -------------------------------------------------------------
read -r client peer < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
etcd --name srt --data-dir "$tmp/data" \
  --listen-client-urls "https://127.0.0.1:$client" --advertise-client-urls "https://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "srt=http://127.0.0.1:$peer" \
  --cert-file "$tmp/server.pem" --key-file "$tmp/server-key.pem" --client-cert-auth --trusted-ca-file "$tmp/ca.pem" \
  >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!

export ETCDCTL_API=3 ETCDCTL_ENDPOINTS="https://127.0.0.1:$client" ETCDCTL_CACERT="$tmp/ca.pem"
as() { # USER etcdctl-arguments...
  local user=$1; shift
  ETCDCTL_CERT="$tmp/$user.pem" ETCDCTL_KEY="$tmp/$user-key.pem" etcdctl "$@"
}
for _ in $(seq 50); do
  as root endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
as root endpoint health >/dev/null 2>&1 || { say "FAIL: etcd did not start; its log:"; tail -n 15 "$tmp/etcd.log"; exit 2; }
say "etcd $(etcd --version | head -n1 | awk '{print $3}') on 127.0.0.1:$client"

# --- the doc's blocks, as they are, as root ---------------------------------------------------
block() { awk -v mark="<!-- rbac:$1 -->" '$0 == mark {f=1; next} f && /^```sh/ {g=1; next} g && /^```/ {exit} g' docs/fleet.md; }
for name in once host; do
  commands=$(block "$name")
  [ -n "$commands" ] || { say "FAIL: docs/fleet.md has no rbac:$name block"; exit 1; }
  ETCDCTL_CERT="$tmp/root.pem" ETCDCTL_KEY="$tmp/root-key.pem" bash -euo pipefail -c "$commands" >"$tmp/$name.out" 2>&1 \
    || { say "FAIL: the rbac:$name block failed:"; cat "$tmp/$name.out"; exit 1; }
done

# --- the checks -------------------------------------------------------------------------------
failed=()
p=/socketreaper/v1/
allowed() { # WHAT USER etcdctl-arguments...
  local what=$1; shift
  if out=$(as "$@" 2>&1); then say "ok: $what"; else say "FAIL: $what: $out"; failed+=("$what"); fi
}
refused() {
  local what=$1; shift
  if out=$(as "$@" 2>&1); then
    say "FAIL: $what was allowed"; failed+=("$what")
  elif [[ $out == *"permission denied"* ]]; then
    say "ok: $what refused"
  else
    say "FAIL: $what: not 'permission denied' but: $out"; failed+=("$what")
  fi
}
lease() { as "$1" lease grant 60 | awk '/granted/ {print $2}'; }

host='{"host":"b1","health":["10.0.0.2:9478"],"version":"0.9.0","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00Z"}'
endpoint='{"owner":"b1/ifindex 7/netns 4026532840","taken":"2026-12-06T12:00:01Z"}'
l1=$(lease b1)
l2=$(lease b2)
[ -n "$l1" ] && [ -n "$l2" ] || { say "FAIL: b1 or b2 could not grant a lease"; exit 1; }

allowed "b1 puts hosts/b1 on its lease" b1 put --lease="$l1" "${p}hosts/b1" "$host"
allowed "b1 puts endpoints/b1/10.1.0.5 on its lease" b1 put --lease="$l1" "${p}endpoints/b1/10.1.0.5" "$endpoint"
allowed "b2 puts hosts/b2 on its lease" b2 put --lease="$l2" "${p}hosts/b2" "${host//b1/b2}"
allowed "b1 reads the whole fleet" b1 get --prefix "$p"
[ "$(as b1 get --prefix --keys-only "$p" | grep -c .)" = 3 ] || { say "FAIL: b1 does not see the 3 keys"; failed+=("b1 sees all"); }
refused "b1 puts hosts/b10" b1 put "${p}hosts/b10" x
refused "b1 puts hosts/b1x" b1 put "${p}hosts/b1x" x
refused "b1 puts endpoints/b10/10.1.0.5" b1 put "${p}endpoints/b10/10.1.0.5" x
refused "b1 puts endpoints/b2/10.1.0.5" b1 put "${p}endpoints/b2/10.1.0.5" x
refused "b1 puts ranges/b1" b1 put "${p}ranges/b1" x
refused "b1 puts services/dns" b1 put "${p}services/dns" x
refused "b1 puts outside the prefix" b1 put /elsewhere x
refused "b1 puts endpoints/b1/10.1.0.6 on b2's lease" b1 put --lease="$l2" "${p}endpoints/b1/10.1.0.6" x
refused "b1 revokes b2's lease" b1 lease revoke "$l2"
allowed "the admin puts ranges/b1" socketreaper-admin put "${p}ranges/b1" '{"ranges":["10.1.0.0/16","fd00:1::/64"]}'
allowed "the admin puts services/dns" socketreaper-admin put "${p}services/dns" '{"Name":"dns","Vip":"10.96.0.10","Port":53,"Protocol":"udp","Backends":["10.1.0.5:53"]}'
refused "the admin puts hosts/b1" socketreaper-admin put "${p}hosts/b1" x
refused "the admin puts endpoints/b1/10.1.0.5" socketreaper-admin put "${p}endpoints/b1/10.1.0.5" x
allowed "b1 revokes its lease" b1 lease revoke "$l1"
[ -z "$(as b1 get --prefix --keys-only "${p}endpoints/b1/")$(as b1 get --keys-only "${p}hosts/b1")" ] \
  || { say "FAIL: b1's keys outlived its lease"; failed+=("revoke deletes"); }
[ -n "$(as b1 get --keys-only "${p}hosts/b2")" ] || { say "FAIL: b2's record went with b1's lease"; failed+=("b2 kept"); }

if [ ${#failed[@]} -gt 0 ]; then
  say "${#failed[@]} check(s) failed: ${failed[*]}"
  exit 1
fi
say "all checks passed (etcd on 127.0.0.1:$client, removed)"
