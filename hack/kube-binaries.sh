#!/usr/bin/env bash
# kube-binaries.sh builds and caches the real etcd and kube-apiserver binaries
# that test/kubeenv runs. Everything comes from the Go module proxy: no
# container images, no release tarballs, no openssl.
#
# Usage: bash hack/kube-binaries.sh
#
# The binaries land in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/gitlab-runner-kubevirt/kube/<k8s>-etcd<etcd>/
# and the build is skipped when both are already there. The last line on
# stdout is that directory; all progress goes to stderr, so callers can do
#   KUBE_BINARIES_DIR="$(bash hack/kube-binaries.sh | tail -n1)"
#
# A cold build takes 5-7.5 minutes on 2 cores and fills about 0.8 GB of module
# cache and 3 GB of build cache; the result is about 140 MB.
set -euo pipefail

# Versions: change them together with test/kubeenv (binaries.go).
K8S_VERSION="v1.37.2"
ETCD_VERSION="v3.6.16"

log() { printf 'kube-binaries: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH"

# k8s.io/kubernetes v1.X.Y ships its staging modules (k8s.io/api, ...) as v0.X.Y.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/gitlab-runner-kubevirt/kube"
OUT_DIR="${CACHE_ROOT}/${K8S_VERSION}-etcd${ETCD_VERSION}"

complete() { [[ -x "${OUT_DIR}/etcd" && -x "${OUT_DIR}/kube-apiserver" ]]; }

if complete; then
	log "cached: ${OUT_DIR}"
	printf '%s\n' "${OUT_DIR}"
	exit 0
fi

mkdir -p "${CACHE_ROOT}"

# Serialise concurrent builds (parallel CI jobs, parallel go test packages).
exec 9>"${CACHE_ROOT}/.lock"
if command -v flock >/dev/null 2>&1; then
	log "waiting for the build lock ${CACHE_ROOT}/.lock"
	flock 9
fi
if complete; then
	log "cached (built by a concurrent run): ${OUT_DIR}"
	printf '%s\n' "${OUT_DIR}"
	exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kube-binaries.XXXXXX")"
# The staging dir sits beside OUT_DIR so the final rename stays on one filesystem.
STAGE="$(mktemp -d "${CACHE_ROOT}/.build.XXXXXX")"
cleanup() { rm -rf "${WORK}" "${STAGE}"; }
trap cleanup EXIT

# A clean, predictable Go environment for the throwaway wrapper modules.
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

start=$SECONDS

# --- etcd -------------------------------------------------------------------
# `go install go.etcd.io/etcd/server/v3@v` is refused (etcd's go.mod has
# replace directives), so require it from a wrapper module and build it there.
log "building etcd ${ETCD_VERSION}"
mkdir -p "${WORK}/etcd"
(
	cd "${WORK}/etcd"
	go mod init example.invalid/etcd-wrapper >/dev/null 2>&1
	go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
	go build -trimpath \
		-ldflags "-s -w" \
		-o "${STAGE}/etcd" go.etcd.io/etcd/server/v3 >&2
)
log "etcd built in $((SECONDS - start))s"

# --- kube-apiserver ---------------------------------------------------------
# k8s.io/kubernetes refers to its staging modules as v0.0.0 with
# `replace k8s.io/X => ./staging/src/k8s.io/X`; a wrapper module replaces each
# of them with the published k8s.io/X ${STAGING_VERSION} instead.
log "building kube-apiserver ${K8S_VERSION} (staging modules ${STAGING_VERSION})"
mkdir -p "${WORK}/kube"
(
	cd "${WORK}/kube"
	go mod init example.invalid/kube-wrapper >/dev/null 2>&1

	info="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}")"
	gomod="" commit=""
	if [[ "${info}" =~ \"GoMod\":\ \"([^\"]+)\" ]]; then gomod="${BASH_REMATCH[1]}"; fi
	if [[ "${info}" =~ \"Hash\":\ \"([0-9a-f]{40})\" ]]; then commit="${BASH_REMATCH[1]}"; fi
	[[ -n "${gomod}" && -f "${gomod}" ]] || die "cannot find go.mod of k8s.io/kubernetes@${K8S_VERSION}"

	mapfile -t staging < <(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[A-Za-z0-9._-]\{1,\}\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\./staging/src/.*$#\2#p' "${gomod}")
	((${#staging[@]} > 0)) || die "no staging replaces found in ${gomod}"
	log "replacing ${#staging[@]} staging modules with ${STAGING_VERSION}"

	args=("-require=k8s.io/kubernetes@${K8S_VERSION}")
	for m in "${staging[@]}"; do
		args+=("-replace=${m}=${m}@${STAGING_VERSION}")
	done
	go mod edit "${args[@]}"
	go get "k8s.io/kubernetes/cmd/kube-apiserver@${K8S_VERSION}" >&2

	minor="${K8S_VERSION#v1.}"
	minor="${minor%%.*}"
	build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
		ldflags+=" -X ${pkg}.gitMajor=1"
		ldflags+=" -X ${pkg}.gitMinor=${minor}"
		ldflags+=" -X ${pkg}.gitTreeState=clean"
		ldflags+=" -X ${pkg}.buildDate=${build_date}"
		if [[ -n "${commit}" ]]; then
			ldflags+=" -X ${pkg}.gitCommit=${commit}"
		fi
	done
	go build -trimpath -ldflags "${ldflags}" \
		-o "${STAGE}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
)
log "kube-apiserver built ($((SECONDS - start))s total)"

"${STAGE}/etcd" --version >&2 || die "the built etcd does not run"
"${STAGE}/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"

# Replace a partial/stale output dir, then publish the new one with one rename.
if [[ -e "${OUT_DIR}" ]]; then
	rm -rf "${OUT_DIR}"
fi
chmod 0755 "${STAGE}"
mv -T "${STAGE}" "${OUT_DIR}"
log "done in $((SECONDS - start))s: ${OUT_DIR}"
printf '%s\n' "${OUT_DIR}"
