// Package cloudinit is the linux-cloudinit OS plugin: it renders cloud-init
// first-boot data (NoCloud) for Linux guests and says how job scripts run
// there.
//
// The user-data is a #cloud-config document marshalled from Go structs
// (never a text template), with exactly one user, the job's authorized key,
// the per-job SSH host key as the guest's only host key, and optionally a
// SHA-512 crypt password hash, hostname and time zone. Network data is left
// empty, so the guest uses DHCP.
//
// Options (RenderRequest.options, from --os-plugin-option key=value):
//
//	sudo    "true" (default) gives the user passwordless sudo; "false" none.
//	groups  comma-separated supplementary groups for the user
//	        (each a name like the username); cloud-init creates missing ones.
//
// Any other option key is refused.
package cloudinit
