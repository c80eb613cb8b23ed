package standin

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// hostOSInfo describes the host as KubeVirt's guest agent would describe
// the guest: commands run over the stand-in's sshd run on the host.
func hostOSInfo() kubevirtv1.VirtualMachineInstanceGuestOSInfo {
	info := kubevirtv1.VirtualMachineInstanceGuestOSInfo{}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		rel := parseOSRelease(data)
		info.Name = rel["NAME"]
		info.ID = rel["ID"]
		info.Version = rel["VERSION"]
		info.VersionID = rel["VERSION_ID"]
		info.PrettyName = rel["PRETTY_NAME"]
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		info.KernelRelease = unix.ByteSliceToString(u.Release[:])
		info.KernelVersion = unix.ByteSliceToString(u.Version[:])
		info.Machine = unix.ByteSliceToString(u.Machine[:])
	}
	return info
}

// parseOSRelease reads KEY=value lines of os-release(5); values may be
// quoted.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		out[k] = v
	}
	return out
}
