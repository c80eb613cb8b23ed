package cloudbase

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
)

// SSHScriptName is the file name of the PowerShell part. Cloudbase-Init
// writes a text/x-shellscript part to its temp dir under this name and picks
// the interpreter by the extension (.ps1: 64-bit Windows PowerShell).
const SSHScriptName = "gitlab-runner-kubevirt-ssh.ps1"

// Well-known SIDs, used instead of names, which Windows localizes.
const (
	sidAdministrators = "S-1-5-32-544"
	sidSystem         = "S-1-5-18"
)

// HostKeyFile is where Windows OpenSSH reads the host key, relative to
// %ProgramData%\ssh; sshd_config names it with the __PROGRAMDATA__ token.
const HostKeyFile = "ssh_host_ed25519_key"

// sshScriptBody is the constant part of the PowerShell script; the values
// are assigned before it, as single-quoted literals. Cloudbase-Init runs it
// with 64-bit Windows PowerShell 5.1 (#ps1_sysnative), after the
// cloud-config part has created the user.
const sshScriptBody = `$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$sshDir = Join-Path $env:ProgramData 'ssh'
$config = Join-Path $sshDir 'sshd_config'
if (-not (Test-Path -LiteralPath $config)) {
  throw "$config does not exist: install OpenSSH Server and start sshd once when building the image"
}

# Administrators by SID: the group's name is localized. Windows OpenSSH reads
# the keys of its members from administrators_authorized_keys.
try {
  Add-LocalGroupMember -SID '` + sidAdministrators + `' -Member $user
} catch {
  if ($_.FullyQualifiedErrorId -notlike 'MemberExists*') { throw }
}

# Write-SshFile writes a file that only SYSTEM and Administrators can read,
# owned by Administrators, as sshd demands for host keys and
# administrators_authorized_keys. The ACL is set before the content lands.
function Write-SshFile([string]$Path, [byte[]]$Content) {
  $tmp = $Path + '.new'
  [System.IO.File]::WriteAllBytes($tmp, [byte[]]@())
  & icacls.exe $tmp /inheritance:r /grant '*` + sidSystem + `:F' /grant '*` + sidAdministrators + `:F' | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "icacls /grant on $tmp exited with $LASTEXITCODE" }
  & icacls.exe $tmp /setowner '*` + sidAdministrators + `' | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "icacls /setowner on $tmp exited with $LASTEXITCODE" }
  [System.IO.File]::WriteAllBytes($tmp, $Content)
  Move-Item -LiteralPath $tmp -Destination $Path -Force
}

$utf8 = New-Object System.Text.UTF8Encoding($false)
Write-SshFile (Join-Path $sshDir '` + HostKeyFile + `') ([System.Convert]::FromBase64String($hostKeyPrivate))
Write-SshFile (Join-Path $sshDir '` + HostKeyFile + `.pub') ($utf8.GetBytes($hostKeyPublic + "` + "`" + `n"))
Write-SshFile (Join-Path $sshDir 'administrators_authorized_keys') ($utf8.GetBytes($authorizedKey + "` + "`" + `n"))

# Serve exactly the per-job host key: drop every HostKey line and name ours
# first, in the global section (before any Match block).
$lines = @([System.IO.File]::ReadAllLines($config) | Where-Object { $_ -notmatch '^\s*HostKey\s' })
[System.IO.File]::WriteAllLines($config, [string[]](@('HostKey __PROGRAMDATA__/ssh/` + HostKeyFile + `') + $lines), $utf8)

Set-Service -Name sshd -StartupType Automatic
Restart-Service -Name sshd -Force
exit 0
`

// sshScript returns the #ps1_sysnative part for user, the host key and the
// authorized key (all validated). It is pure ASCII, so Windows PowerShell
// 5.1, which reads a BOM-less script in the ANSI code page, reads it right.
func sshScript(user string, hostKey osutil.HostKey, authorizedKey string) (string, error) {
	var b strings.Builder
	b.WriteString("#ps1_sysnative\n")
	b.WriteString("# gitlab-runner-kubevirt windows-cloudbase: the per-job SSH host key and the job's key for Windows OpenSSH.\n")
	for _, v := range []struct{ name, value string }{
		{"user", user},
		{"hostKeyPrivate", base64.StdEncoding.EncodeToString(hostKey.PrivatePEM)},
		{"hostKeyPublic", hostKey.Public},
		{"authorizedKey", authorizedKey},
	} {
		lit, err := QuoteLiteral(v.value)
		if err != nil {
			return "", fmt.Errorf("quote $%s: %w", v.name, err)
		}
		fmt.Fprintf(&b, "$%s = %s\n", v.name, lit)
	}
	b.WriteString(sshScriptBody)
	return b.String(), nil
}
