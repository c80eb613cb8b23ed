#!/bin/sh
# Helm post-renderer for the gitlab-runner chart: reads the rendered chart on
# stdin and writes it to stdout with the gitlab-runner-kubevirt install init
# container added to the chart's Deployment (kustomization.yaml and
# install-init-container.yaml beside this script).
#
#   helm install gitlab-runner gitlab/gitlab-runner -f deploy/helm/values.yaml \
#     --post-renderer deploy/helm/post-render.sh
#
# Needs kustomize v5, or kubectl 1.27 or later (kubectl kustomize), on PATH.
set -eu
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT HUP INT TERM
cp "$here/kustomization.yaml" "$here/install-init-container.yaml" "$work/"
cat >"$work/helm-rendered.yaml"
if command -v kustomize >/dev/null 2>&1; then
	kustomize build "$work"
elif command -v kubectl >/dev/null 2>&1; then
	kubectl kustomize "$work"
else
	echo "post-render.sh: needs kustomize (v5) or kubectl (1.27 or later) on PATH" >&2
	exit 1
fi
