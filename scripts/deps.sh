#!/bin/sh
# Install what building, testing and benchmarking weft needs, from Debian's
# packages. Does nothing when everything is already present; uses sudo when
# not root. Extra package names may be given as arguments.
set -eu

want="cmake pkg-config make gcc liburing-dev libjemalloc-dev libcriterion-dev curl libcurl4-openssl-dev redis-tools $*"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -n "$missing" ] || exit 0

echo "deps.sh: installing:$missing" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
