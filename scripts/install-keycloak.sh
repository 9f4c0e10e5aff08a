#!/usr/bin/env bash
# Installs the Keycloak server distribution (the zip of the Maven artifact
# org.keycloak:keycloak-quarkus-dist 26.4.0, fetched with mvn) into a cache outside the
# repository, once; later runs reuse it. Prints nothing on a cache hit.
# The e2e test e2e/oidc_test.go starts it on loopback as a real OpenID
# Connect provider, with the machine's JDK 25 (KEYCLOAK_JAVA_HOME,
# default /usr/lib/jvm/temurin-25-jdk-amd64; Keycloak 26 needs Java 21+).
#
# What it adds, measured on 2 shared cores (2026-11-28): the zip is 160 MB
# (kept in Maven's local repository, 153 MB on disk) and unpacks to 170 MB;
# the first install took 23 s (Maven resolving its dependency plugin, then
# the zip), one with the plugin already resolved 11 s, one with the zip
# already in Maven's repository 4 s, a cache hit 0 s. In the e2e run
# Keycloak started in 16 s on idle cores and 36 s with the machine loaded
# (the test allows 180 s), peaked at 470 MB resident, and wrote 3 MB (its
# H2 database, temporary files, transaction logs) into the test's
# temporary directory; TestOIDCKeycloak took 21–45 s in all.
set -euo pipefail
version=26.4.0
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
out="$cache/keycloak-$version"
if [ -x "$out/bin/kc.sh" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "install-keycloak: mvn not found (Debian package maven)" >&2; exit 1; }
echo "install-keycloak: fetching Keycloak $version with mvn into $out" >&2
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/keycloak-unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# dependency:copy needs no project: it resolves the zip into Maven's local
# repository (kept there, so a re-install needs no download) and copies it.
mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$version:zip" \
  -DoutputDirectory="$tmp" -Dmdep.useBaseVersion=true >&2
zip="$tmp/keycloak-quarkus-dist-$version.zip"
[ -f "$zip" ] || { echo "install-keycloak: $zip missing after mvn dependency:copy" >&2; exit 1; }
if command -v unzip >/dev/null; then
  unzip -q "$zip" -d "$tmp"
else
  python3 -m zipfile -e "$zip" "$tmp"
fi
chmod +x "$tmp/keycloak-$version"/bin/*.sh
zipbytes="$(stat -c %s "$zip")"
rm -rf "$out"
mv "$tmp/keycloak-$version" "$out"
echo "install-keycloak: Keycloak at $out ($(du -sm "$out" | cut -f1) MB unpacked, zip $((zipbytes / 1000000)) MB, ${SECONDS}s)" >&2
