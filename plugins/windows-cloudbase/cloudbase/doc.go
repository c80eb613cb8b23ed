// Package cloudbase is the windows-cloudbase OS plugin: it renders
// Cloudbase-Init (1.1.0 or later) user-data for Windows guests, delivered on
// a ConfigDrive, and says how job scripts run there.
//
// The user-data is a MIME multipart/mixed document (mime/multipart) with two
// parts, processed by Cloudbase-Init's UserDataPlugin in this order:
//
//  1. text/cloud-config: the job user (in the Administrators group, with the
//     plaintext password Cloudbase-Init requires and the authorized key),
//     set_hostname and set_timezone. The document is JSON, which is YAML:
//     every string is double-quoted, so no value can be read back as a
//     boolean, number, date or null by Cloudbase-Init's YAML 1.1 loader.
//  2. text/x-shellscript "gitlab-runner-kubevirt-ssh.ps1" (#ps1_sysnative):
//     installs the per-job SSH host key and the authorized key for Windows
//     OpenSSH with the ACLs it demands, points sshd at the host key and
//     restarts sshd. Every value in it is a PowerShell single-quoted literal
//     made by [QuoteLiteral]; the private key travels base64-encoded.
//
// Both parts are base64-encoded in the MIME document and the boundary holds
// characters base64 never produces, so no content can end a part early.
//
// Options (RenderRequest.options, from --os-plugin-option key=value):
//
//	shell   "pwsh" (default) or "powershell": the GitLab shell and the
//	        executable of the run recipe.
//	groups  comma-separated extra local groups for the user, besides
//	        Administrators.
//
// Any other option key is refused.
package cloudbase
