#!/usr/bin/env bash
# Fetches the pinned Apache Kafka broker (kafka_2.13 and its runtime dependencies, from
# Maven Central, as pom.xml says) once per machine into a cache outside the work tree and
# prints the directory holding the jars. A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
dir=$cache/kafka-$version
libs=$dir/libs
# The stamp is written last and names the pom it came from, so an interrupted fetch or a
# changed pom fetches again.
stamp=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
fetched() { [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$stamp" ] && [ -f "$libs/kafka_2.13-$version.jar" ]; }
if fetched; then
  echo "$libs"
  exit 0
fi
command -v mvn >/dev/null 2>&1 || { echo "mvn is not installed: run make prereqs (apt-get install -y maven)" >&2; exit 1; }
mkdir -p "$dir"
# One fetch at a time (make and the tests may both ask); the second one finds it done.
exec 9>"$dir/.lock"
flock 9
if fetched; then
  echo "$libs"
  exit 0
fi
echo "fetching Apache Kafka $version (kafka_2.13 and its dependencies) from Maven Central into $libs..." >&2
rm -rf "$libs.tmp"
log=$dir/fetch.log
if ! mvn -B -q -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$libs.tmp" >"$log" 2>&1; then
  cat "$log" >&2
  echo "fetching Kafka failed (Maven's output above, also in $log)" >&2
  exit 1
fi
rm -rf "$libs"
mv "$libs.tmp" "$libs"
echo "$stamp" >"$dir/.complete"
echo "$libs"
