// Package pluginhost finds, pins and starts gitlab-runner-kubevirt plugins.
//
// Plugins are binaries named gitlab-runner-kubevirt-plugin-<name> in one
// plugin directory ([ResolveDir]: --plugin-dir, else
// GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR, else plugins/ beside the core binary).
// Beside them the admin keeps plugins.lock ([Lock]), written by
// `gitlab-runner-kubevirt plugins lock`: it pins each binary's sha256 and
// records what the plugin said about itself (GetInfo), so a stage picks a
// plugin ([Lock.ByName], [Lock.ForShell]) without starting every plugin.
//
// A [Host] starts locked plugins ([Host.Open]): it launches the file pinned
// to its locked sha256 (go-plugin hashes it right before exec and refuses
// it if it differs from the lock, so a start reads the binary once), with
// a minimal environment (PATH and the plugin log level only: no Kubernetes
// credentials, no job variables), checks its GetInfo against the lock, and
// tracks it until [Host.Close], which ends every plugin it started. The
// admin commands (plugins list, health, lock) use [Host.Inspect],
// [Host.CheckHealth] and [Host.BuildLock].
package pluginhost
