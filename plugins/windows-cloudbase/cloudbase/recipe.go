package cloudbase

import (
	"encoding/base64"
	"encoding/binary"
	"unicode/utf16"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Shells the plugin serves; the option "shell" picks the recipe's.
const (
	ShellPwsh       = "pwsh"
	ShellPowerShell = "powershell"
)

// TempDir is where job scripts are uploaded. C:/Windows/Temp exists on
// every Windows, does not depend on the user's profile (which Cloudbase-Init
// creates late), and lets Administrators (the job user) create files whose
// content other users cannot list or read. Forward slashes work for both
// ends: Windows OpenSSH's SFTP server accepts "C:/..." paths, and pwsh and
// powershell accept them after -File.
const TempDir = "C:/Windows/Temp"

// ReadinessScript succeeds once Cloudbase-Init has finished this boot.
// Cloudbase-Init stops its own service when all plugins ran and no reboot is
// pending (stop_service_on_exit, default true). A service that has not
// started since boot is "Stopped" too, with the Win32 exit code 1077
// (ERROR_SERVICE_NEVER_STARTED), so that state does not count. It waits as
// long as the core lets it.
const ReadinessScript = `$ErrorActionPreference = 'Stop'
while ($true) {
  $s = Get-CimInstance -ClassName Win32_Service -Filter "Name='cloudbase-init'"
  if ($null -eq $s) {
    [Console]::Error.WriteLine('readiness: the cloudbase-init service is not installed')
    exit 1
  }
  if ($s.State -eq 'Stopped' -and $s.ExitCode -ne 1077) {
    if ($s.ExitCode -ne 0) {
      [Console]::Error.WriteLine("readiness: cloudbase-init stopped with exit code $($s.ExitCode); see its log")
    }
    exit 0
  }
  Start-Sleep -Seconds 2
}
`

// EncodeCommand encodes a script for PowerShell's -EncodedCommand: base64
// of its UTF-16LE bytes. Such a command line reads the same to cmd.exe and
// to PowerShell, whichever is the OpenSSH default shell, and needs no
// quoting.
func EncodeCommand(script string) string {
	units := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(units))
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2*i:], u)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Recipe returns how job scripts run with shell ("pwsh" or "powershell",
// validated). The executable is the shell's name, found on the guest's
// PATH; the exit code of `-File` is the script's.
func Recipe(shell string) *pluginv1.RunRecipe {
	return &pluginv1.RunRecipe{
		Shell:            shell,
		ScriptExtension:  ".ps1",
		TempDir:          TempDir,
		Command:          shell + " -NoProfile -NonInteractive -ExecutionPolicy Bypass -File {script}",
		ReadinessCommand: shell + " -NoProfile -NonInteractive -EncodedCommand " + EncodeCommand(ReadinessScript),
		PathSeparator:    "/",
	}
}
