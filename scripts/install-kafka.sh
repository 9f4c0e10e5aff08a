#!/usr/bin/env bash
# Installs Apache Kafka 4.4.0 (the Maven artifact org.apache.kafka:kafka_2.13
# and its runtime dependencies, fetched with mvn) into a cache outside the
# repository, once, and prints its path; later runs reuse it. The e2e test
# e2e/kafka_test.go starts it on loopback as a one-node KRaft cluster
# (broker and controller in one process), with the machine's Java 17+.
#
# Layout: $cache/kafka-4.4.0/libs/*.jar — run with java -cp 'libs/*'
# kafka.tools.StorageTool (format) and kafka.Kafka (the server); there are
# no bin/ scripts, as the artifact is not the release tarball.
#
# SLF4J: Kafka logs through slf4j-api 1.7 and the artifact brings no
# binding; without one SLF4J drops every line (the broker's log is three
# lines, "Defaulting to no-operation (NOP) logger implementation"). slf4j-simple, of the same version,
# writes INFO and up to stderr with no configuration file.
#
# What it adds, measured on 2 shared cores (load average about 3): 45 jars,
# 43 MB (and 56 MB in Maven's local repository, poms included); a first
# install with an empty Maven repository took 17 s, one with the jars
# already there 5 s, a cache hit 0.01 s. In e2e/kafka_test.go the storage
# format takes about 1 s and the broker answers metadata 2.5–3.5 s later.
set -euo pipefail
version=4.4.0
scala=2.13
slf4j=1.7.36 # the slf4j-api that kafka_2.13 4.4.0 depends on
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
out="$cache/kafka-$version"
# libs/ appears only complete (moved into place last), so its server jar
# says the install is whole.
if [ -f "$out/libs/kafka_$scala-$version.jar" ]; then
  echo "$out"
  exit 0
fi

# java_major prints the running Java's major version (8 for "1.8").
java_major() {
  local spec
  spec="$(java -XshowSettings:properties -version 2>&1 | awk '$1 == "java.specification.version" {print $3}')"
  spec="${spec#1.}"
  echo "${spec%%.*}"
}
command -v java >/dev/null || { echo "install-kafka: java not found; Kafka $version needs Java 17 or later (Debian package openjdk-17-jre-headless)" >&2; exit 1; }
major="$(java_major)"
if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 17 ]; then
  echo "install-kafka: java on PATH is version ${major:-unknown}; Kafka $version needs Java 17 or later" >&2
  exit 1
fi
command -v mvn >/dev/null || { echo "install-kafka: mvn not found (Debian package maven)" >&2; exit 1; }

echo "install-kafka: fetching Kafka $version with mvn into $out" >&2
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/kafka-fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# copy-dependencies needs a project: a pom whose only dependencies are the
# server and the binding. The jars stay in Maven's local repository too, so
# a re-install needs no download.
cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>graymesh.e2e</groupId>
  <artifactId>kafka-install</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$scala</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$slf4j</version></dependency>
  </dependencies>
</project>
POM
mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp/kafka-$version/libs" >&2
[ -f "$tmp/kafka-$version/libs/kafka_$scala-$version.jar" ] || {
  echo "install-kafka: kafka_$scala-$version.jar missing after mvn dependency:copy-dependencies" >&2
  exit 1
}
rm -rf "$out"
mv "$tmp/kafka-$version" "$out"
jars=("$out"/libs/*.jar)
echo "install-kafka: Kafka $version at $out (${#jars[@]} jars, $(du -sm "$out" | cut -f1) MB, ${SECONDS}s)" >&2
echo "$out"
