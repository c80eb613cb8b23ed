// Package session keeps a job's transport plugin running between the
// job's stages (a per-job session), so that every run sub-stage reuses the
// SSH connection prepare opened instead of starting a plugin and dialing a
// new connection.
//
// prepare detaches its transport plugin (pluginapi's Session service) and
// saves the reattach data in one file in the job's TMPDIR (gitlab-runner
// gives every job its own TMPDIR and removes it after the job). The file is
// encrypted with AES-256-GCM under a key derived with HKDF-SHA256 from the
// job token (CUSTOM_ENV_CI_JOB_TOKEN) and bound to the VMI's name; inside,
// the VMI's UID binds it to one VM, so a file from another job, another VM
// or a re-created VMI is refused. It holds no guest credential: only the
// plugin's socket, pid and ephemeral mTLS material. run reattaches, and on
// any problem falls back to a fresh plugin; cleanup stops the plugin and
// removes the file. A plugin left behind ends by itself (idle timeout, job
// timeout, or its guest gone).
package session
