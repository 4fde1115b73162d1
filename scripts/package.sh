#!/usr/bin/env bash
# Builds the Debian package artifacts/deb/socketreaper_<version>_amd64.deb (Debian 12, as root)
# from packaging/deb/ and the NativeAOT binary, then runs lintian on it (errors fail the build).
#
#   scripts/package.sh                 bootstrap --package, publish artifacts/aot if a source is newer, build, lintian
#   scripts/package.sh --no-publish    use artifacts/aot/socketreaper as it is (the suite publishes it just before)
#   scripts/package.sh --no-lintian    skip lintian
#
# No debian/ directory and no debhelper: the binary is built by dotnet, not by a Debian source
# package, so the tree is laid out here and handed to 'dpkg-deb --build --root-owner-group'
# (docs/building.md#the-debian-package). The last line names the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."

publish=1 lintian=1
for arg in "$@"; do
  case "$arg" in
    --no-publish) publish=0 ;;
    --no-lintian) lintian=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "package: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

say() { printf 'package: %s\n' "$*" >&2; }
die() { printf 'package: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/bootstrap.sh --package >&2
fi
for tool in dpkg-deb dpkg-shlibdeps objcopy gzip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing; run 'scripts/bootstrap.sh --package' as root."
done

bin=artifacts/aot/socketreaper
if [ "$publish" -eq 1 ] && { [ ! -x "$bin" ] || [ -n "$(find src bpf build dbus Directory.Build.props Directory.Packages.props global.json \
     -newer "$bin" -type f -not -path '*/bin/*' -not -path '*/obj/*' -print -quit)" ]; }; then
  say "publishing the NativeAOT binary (artifacts/aot)"
  log=$(mktemp)
  if ! dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet >"$log" 2>&1; then
    tail -20 "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  touch "$bin"
fi
[ -x "$bin" ] || die "$bin is missing; run without --no-publish."

# The version is the binary's own (Directory.Build.props' <Version>), in Debian's form: a '-' of
# a pre-release becomes '~' (0.2.0-rc1 sorts before 0.2.0), and the Debian revision is -1.
upstream=$("$bin" version | awk '{print $2}')
[[ $upstream =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "'$bin version' printed '$upstream', not a version."
version="${upstream//-/\~}-1"
source="version $upstream"
if commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then source="git commit $commit ($upstream)"; fi
# Reproducible: the date is the last commit's, not the build's.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

out=artifacts/deb
stage=$out/root
deb=$out/socketreaper_${version}_amd64.deb
rm -rf "$stage" "$out"/socketreaper_*.deb
mkdir -p "$stage/DEBIAN"
pkg=packaging/deb

put() { install -D -m "$1" "$2" "$stage$3"; }
put 0755 "$bin"                             /usr/sbin/socketreaper
put 0644 systemd/socketreaper.service       /lib/systemd/system/socketreaper.service
put 0644 systemd/org.socketreaper.Reaper1.conf /usr/share/dbus-1/system.d/org.socketreaper.Reaper1.conf
put 0644 systemd/socketreaper.sysusers      /usr/lib/sysusers.d/socketreaper.conf
put 0644 systemd/socketreaper.tmpfiles      /usr/lib/tmpfiles.d/socketreaper.conf
put 0644 "$pkg/reaper.json"                 /etc/socketreaper/reaper.json
put 0644 systemd/reaper.example.json        /usr/share/doc/socketreaper/examples/reaper.example.json
put 0644 systemd/socketreaper-fleet.conf    /usr/share/doc/socketreaper/examples/socketreaper-fleet.conf
put 0644 "$pkg/socketreaper.bash-completion" /usr/share/bash-completion/completions/socketreaper
put 0644 "$pkg/copyright"                   /usr/share/doc/socketreaper/copyright
put 0644 "$pkg/lintian-overrides"           /usr/share/lintian/overrides/socketreaper
# The linker's .comment (compiler versions) is of no use at run time.
objcopy --remove-section=.comment "$stage/usr/sbin/socketreaper"
grep -q '^ExecStart=/usr/sbin/socketreaper ' "$stage/lib/systemd/system/socketreaper.service" ||
  die "systemd/socketreaper.service's ExecStart is not /usr/sbin/socketreaper, the packaged binary."

# changelog.Debian.gz and the man pages, gzip -9n (no name, no time stamp: reproducible).
date=$(date -u -R -d "@$epoch")
sed -e "s|@VERSION@|$version|" -e "s|@SOURCE@|$source|" -e "s|@DATE@|$date|" "$pkg/changelog.in" |
  gzip -9n >"$out/changelog.Debian.gz"
put 0644 "$out/changelog.Debian.gz" /usr/share/doc/socketreaper/changelog.Debian.gz

# reaper.json(5)'s settings come from the binary's own table ('config keys': key, default, then
# "what it takes: what it means", columns two or more spaces apart), so the page cannot drift.
settings=$("$bin" config keys | awk -F'  +' '
  function roff(text) { gsub(/\\/, "\\e", text); sub(/^[.\047]/, "\\\\&&", text); return text }
  NF >= 3 { rest = $3; for (i = 4; i <= NF; i++) rest = rest "  " $i
            printf ".TP\n.B %s\n(default: %s) %s\n", roff($1), roff($2), roff(rest) }')
[ -n "$settings" ] || die "'$bin config keys' printed no settings."
mkdir -p "$stage/usr/share/man/man8" "$stage/usr/share/man/man5"
sed "s|@VERSION@|$upstream|" "$pkg/man/socketreaper.8" | gzip -9n >"$stage/usr/share/man/man8/socketreaper.8.gz"
SETTINGS=$settings VERSION=$upstream awk '
  { gsub(/@VERSION@/, ENVIRON["VERSION"]) } /^@SETTINGS@$/ { print ENVIRON["SETTINGS"]; next } { print }' \
  "$pkg/man/reaper.json.5.in" | gzip -9n >"$stage/usr/share/man/man5/reaper.json.5.gz"
chmod 0644 "$stage"/usr/share/man/man*/*.gz

for script in postinst prerm postrm; do install -m 0755 "$pkg/$script" "$stage/DEBIAN/$script"; done
install -m 0644 "$pkg/conffiles" "$stage/DEBIAN/conffiles"

# Depends: what the binary links (dpkg-shlibdeps reads its NEEDED entries: libc6), plus libbpf1,
# which it opens at run time ([LibraryImport("libbpf.so.1")]), so no ELF header names it.
shlib=$(mktemp -d)
mkdir -p "$shlib/debian"
printf 'Source: socketreaper\n\nPackage: socketreaper\nArchitecture: amd64\n' >"$shlib/debian/control"
linked=$(cd "$shlib" && dpkg-shlibdeps -O -e "$OLDPWD/$stage/usr/sbin/socketreaper" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlib"
[ -n "$linked" ] || die "dpkg-shlibdeps found no dependencies of $bin."
depends="$linked, libbpf1 (>= 1:1.3)"

# md5sums of everything but the conffiles, as dpkg expects.
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
  grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | xargs md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@DEPENDS@|$depends|" -e "s|@INSTALLED_SIZE@|$size|" "$pkg/control.in" \
  >"$stage/DEBIAN/control"

# Modes as the package states them, whatever the checkout's umask left on directories.
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -exec touch -h -d "@$epoch" {} +
dpkg-deb --build --root-owner-group -Zxz "$stage" "$deb" >&2

if [ "$lintian" -eq 1 ]; then
  command -v lintian >/dev/null 2>&1 || die "lintian is missing; run 'scripts/bootstrap.sh --package' as root, or pass --no-lintian."
  say "lintian (errors fail; warnings are listed in docs/building.md)"
  lintian --fail-on error "$deb" >&2 ||
    die "lintian found errors in $deb."
fi
say "built $deb ($(du -k "$deb" | cut -f1) KiB, Depends: $depends)"
echo "$deb"
