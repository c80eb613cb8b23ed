// Package bench holds the measuring tools of the benchmark suite: robust
// statistics (medians and percentiles of repeated runs, A/B runs taken
// alternately so machine noise hits both sides alike), peak-memory
// watching of a process tree from /proc, counting of API requests in a
// kube-apiserver audit log, and the report written to bench/latest.json
// and BENCHMARKS.md.
//
// The driver is bench/cmd/bench (`make bench`). Nothing here asserts a
// timing: targets are reported as met or missed, never enforced by tests.
package bench
