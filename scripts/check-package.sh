#!/usr/bin/env bash
# Checks the Debian package without installing it (the install, start, remove and purge under a
# real systemd is the VM's job).
#
#   scripts/check-package.sh [DEB]
#
# Without DEB it builds one with 'scripts/package.sh --no-publish --no-lintian' from
# artifacts/aot/socketreaper (the suite publishes that just before). Then, on the .deb:
#   1. dpkg-deb -I: the fields, Depends (libc6 from dpkg-shlibdeps, libbpf1 >= 1:1.3), the version
#      is the binary's, conffiles is exactly /etc/socketreaper/reaper.json, maintainer scripts parse;
#   2. dpkg-deb -c: every path with its mode, owned by root:root, nothing else;
#   3. dpkg-deb -x: the unit's ExecStart is the packaged binary, which runs and reads the packaged
#      reaper.json as valid; scripts/check-systemd.sh on the packaged unit (systemd-analyze verify,
#      security --offline=true exposure <= 3.5) and policy; the man pages render without warnings;
#      the bash completion loads; apt-get install --simulate resolves the Depends;
#   4. lintian --fail-on error.
# Exits 0 only if all pass; the last line is a one-line summary.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
say() { printf 'check-package: %s\n' "$*"; }
fail() { say "FAIL: $*"; failed+=("$1"); }

deb=${1:-}
if [ -z "$deb" ]; then
  deb=$(bash scripts/package.sh --no-publish --no-lintian | tail -n1) || { say "FAIL: scripts/package.sh"; exit 1; }
fi
[ -f "$deb" ] || { say "FAIL: no package at '$deb'"; exit 1; }
say "checking $deb"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 1. control --------------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = socketreaper ] || fail "Package is '$(field Package)'"
[ "$(field Architecture)" = amd64 ] || fail "Architecture is '$(field Architecture)'"
depends=$(field Depends)
[[ $depends == *"libbpf1 (>= 1:1.3)"* ]] || fail "Depends lacks 'libbpf1 (>= 1:1.3)': $depends"
[[ $depends =~ (^|, )libc6\ \(\>=\ [0-9.]+\) ]] || fail "Depends lacks libc6 (>= ...): $depends"
[ -n "$(field Maintainer)" ] && [ -n "$(field Description)" ] && [ -n "$(field Installed-Size)" ] ||
  fail "Maintainer, Description or Installed-Size missing"
dpkg-deb -e "$deb" "$tmp/DEBIAN"
[ "$(cat "$tmp/DEBIAN/conffiles")" = /etc/socketreaper/reaper.json ] ||
  fail "conffiles is not exactly /etc/socketreaper/reaper.json: $(tr '\n' ' ' <"$tmp/DEBIAN/conffiles")"
for script in postinst prerm postrm; do
  [ -x "$tmp/DEBIAN/$script" ] && sh -n "$tmp/DEBIAN/$script" || fail "$script missing, not executable or not valid sh"
done
# The Debian way to enable and start (what dh_installsystemd writes), guarded for no systemd.
grep -q 'deb-systemd-helper enable "\$unit"' "$tmp/DEBIAN/postinst" &&
  grep -q 'deb-systemd-invoke "\$action" "\$unit"' "$tmp/DEBIAN/postinst" &&
  grep -q '\[ -d /run/systemd/system \]' "$tmp/DEBIAN/postinst" || fail "postinst does not enable and start the unit the Debian way"
grep -q 'datapath detach' "$tmp/DEBIAN/prerm" || fail "prerm does not detach"
# postinst configure (a first install) with every command it calls stubbed to log its arguments:
# it must create the group and directories and enable the unit, and, with systemd not PID 1 (no
# /run/systemd/system, as on a build host or in a chroot), start nothing.
if [ ! -d /run/systemd/system ]; then
  mkdir -p "$tmp/stubs"
  for cmd in deb-systemd-helper deb-systemd-invoke systemctl systemd-sysusers systemd-tmpfiles dbus-send groupadd; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$cmd" "$tmp/calls" >"$tmp/stubs/$cmd"
    chmod +x "$tmp/stubs/$cmd"
  done
  PATH=$tmp/stubs:$PATH sh "$tmp/DEBIAN/postinst" configure >/dev/null 2>&1 || fail "postinst configure failed"
  for call in "systemd-sysusers /usr/lib/sysusers.d/socketreaper.conf" \
              "systemd-tmpfiles --create /usr/lib/tmpfiles.d/socketreaper.conf" \
              "deb-systemd-helper unmask socketreaper.service" "deb-systemd-helper enable socketreaper.service"; do
    grep -qxF "$call" "$tmp/calls" 2>/dev/null || fail "postinst configure did not call '$call'"
  done
  grep -E '^(deb-systemd-invoke|systemctl) ' "$tmp/calls" && fail "postinst started something without systemd"
fi
grep -q 'rm -rf /var/lib/socketreaper' "$tmp/DEBIAN/postrm" || fail "postrm purge keeps the state"

# --- 2. contents -------------------------------------------------------------------------------
# mode path, for every regular file; directories 0755. Anything more or less fails.
cat >"$tmp/expected" <<'EOF'
-rw-r--r-- ./etc/socketreaper/reaper.json
-rw-r--r-- ./lib/systemd/system/socketreaper.service
-rw-r--r-- ./usr/lib/sysusers.d/socketreaper.conf
-rw-r--r-- ./usr/lib/tmpfiles.d/socketreaper.conf
-rwxr-xr-x ./usr/sbin/socketreaper
-rw-r--r-- ./usr/share/bash-completion/completions/socketreaper
-rw-r--r-- ./usr/share/dbus-1/system.d/org.socketreaper.Reaper1.conf
-rw-r--r-- ./usr/share/doc/socketreaper/changelog.Debian.gz
-rw-r--r-- ./usr/share/doc/socketreaper/copyright
-rw-r--r-- ./usr/share/doc/socketreaper/examples/reaper.example.json
-rw-r--r-- ./usr/share/doc/socketreaper/examples/socketreaper-fleet.conf
-rw-r--r-- ./usr/share/lintian/overrides/socketreaper
-rw-r--r-- ./usr/share/man/man5/reaper.json.5.gz
-rw-r--r-- ./usr/share/man/man8/socketreaper.8.gz
EOF
dpkg-deb -c "$deb" >"$tmp/contents"
awk '$1 !~ /^d/ {print $1, $6}' "$tmp/contents" | LC_ALL=C sort -k2 >"$tmp/actual"
LC_ALL=C sort -k2 -o "$tmp/expected" "$tmp/expected"
diff -u "$tmp/expected" "$tmp/actual" >"$tmp/diff" || { sed 's/^/  /' "$tmp/diff"; fail "contents differ from the list"; }
awk '$2 != "root/root" {print "  " $0}' "$tmp/contents" | grep . && fail "files not owned by root:root"
awk '$1 ~ /^d/ && $1 != "drwxr-xr-x" {print "  " $0}' "$tmp/contents" | grep . && fail "directories not 0755"

# --- 3. the files ------------------------------------------------------------------------------
root=$tmp/root
dpkg-deb -x "$deb" "$root"
unit=$root/lib/systemd/system/socketreaper.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/sbin/socketreaper run" ] || fail "ExecStart is '$exec_start', not the packaged /usr/sbin/socketreaper run"
bin=$root/usr/sbin/socketreaper
upstream=$("$bin" version | awk '{print $2}')
[[ $(field Version) == "${upstream//-/\~}-"* ]] || fail "Version $(field Version) is not the binary's $upstream"
"$bin" config check --config "$root/etc/socketreaper/reaper.json" >/dev/null || fail "the packaged reaper.json is not valid"
# The packaged unit, with the packaged binary standing in for /usr/sbin/socketreaper.
UNIT=$unit bash scripts/check-systemd.sh "$bin" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "check-systemd on the packaged unit"
for page in "$root"/usr/share/man/man*/*.gz; do
  warnings=$(zcat "$page" | LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l - 2>&1 >/dev/null)
  [ -z "$warnings" ] || { printf '  %s\n' "$warnings"; fail "$(basename "$page") renders with warnings"; }
  zcat "$page" | grep -q '@[A-Z]*@' && fail "$(basename "$page") has an unfilled @PLACEHOLDER@"
done
zcat "$root/usr/share/man/man5/reaper.json.5.gz" | grep -q '^\.B Reaping\.Mode$' || fail "reaper.json(5) lacks the settings table"
completion=$root/usr/share/bash-completion/completions/socketreaper
if [ -r /usr/share/bash-completion/bash_completion ]; then
  bash -c '. /usr/share/bash-completion/bash_completion; . "$1"; complete -p socketreaper' _ "$completion" >/dev/null ||
    fail "the bash completion does not load"
else
  bash -n "$completion" || fail "the bash completion does not parse"
fi
[ "$(zcat "$root/usr/share/doc/socketreaper/changelog.Debian.gz" | head -n1 | sed 's/.*(\(.*\)).*/\1/')" = "$(field Version)" ] ||
  fail "changelog.Debian.gz's version is not the package's"

# apt resolves the Depends on this host (libbpf1 from bookworm-backports); --simulate installs nothing.
if command -v apt-get >/dev/null 2>&1; then
  apt-get install --simulate "$(realpath "$deb")" >"$tmp/apt.log" 2>&1 && grep -q '^Conf socketreaper ' "$tmp/apt.log" ||
    { sed 's/^/  /' "$tmp/apt.log"; fail "apt-get cannot install the package here"; }
fi

# --- 4. lintian --------------------------------------------------------------------------------
if command -v lintian >/dev/null 2>&1; then
  lintian --fail-on error "$deb" 2>&1 | grep -v 'running with root privileges' | sed 's/^/  /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "lintian found errors"
else
  fail "lintian is not installed (scripts/bootstrap.sh --package)"
fi

if [ ${#failed[@]} -eq 0 ]; then
  say "PASS: $(basename "$deb"): fields, conffiles, contents and modes, ExecStart, unit verified, lintian without errors"
  exit 0
fi
say "FAIL: $(IFS=','; echo "${failed[*]}")"
exit 1
