# Sourced by scripts: debian_mirror prints the URI of the Debian mirror this machine's apt already
# uses for bookworm (deb822 debian.sources first, then one-line .list files), or nothing. Other
# suites (bookworm-backports, bullseye) are fetched from the same mirror, so no registry host name
# is ever written into the repository.
debian_mirror() {
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/{u=$2} /^Suites:/ && / bookworm( |$)/{print u; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ]; then
    uri=$(grep -hsE '^deb +(\[[^]]*\] +)?[a-z]+://[^ ]+ +bookworm +' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          | head -n1 | sed -E 's/^deb +(\[[^]]*\] +)?([^ ]+).*/\2/')
  fi
  printf '%s' "$uri"
}
