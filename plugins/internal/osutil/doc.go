// Package osutil holds the request validation the first-party OS plugins
// (linux-cloudinit, windows-cloudbase) share: SSH keys, time zones, the
// instance id and plugin options; and what they declare alike in GetInfo
// and Health ([OSInfo], [Healthy]).
//
// Every check returns a [pluginapi.InvalidInput] error that names the
// request field, the value and the rule it broke. Secrets (private keys,
// passwords) are never quoted: their value is given as [Redacted].
//
// Values that pass are returned in a canonical form (keys re-encoded from
// their parsed form), so what a plugin writes into first-boot data comes
// from parsed data, never from the caller's bytes.
package osutil
