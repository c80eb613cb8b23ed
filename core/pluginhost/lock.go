package pluginhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// LockFileName is the lock file's name inside the plugin directory.
const LockFileName = "plugins.lock"

// LockAPIVersion is the lock file format this core reads and writes.
const LockAPIVersion = 1

// Limits that keep a damaged or hostile lock file from costing much.
const (
	maxLockSize     = 1 << 20
	maxLockEntries  = 1000
	maxListLen      = 64  // apiVersions, shells, capabilities
	maxVersionLen   = 128 // a semantic version string
	maxShownValueLn = 80  // longest value quoted in an error
)

// Kind is a plugin's kind as plugins.lock spells it.
type Kind string

// Plugin kinds.
const (
	KindOS        Kind = "os"
	KindTransport Kind = "transport"
)

// KindFromProto converts the contract's kind; KIND_UNSPECIFIED and unknown
// values are an error.
func KindFromProto(k pluginv1.Kind) (Kind, error) {
	switch k {
	case pluginv1.Kind_KIND_OS:
		return KindOS, nil
	case pluginv1.Kind_KIND_TRANSPORT:
		return KindTransport, nil
	}
	return "", fmt.Errorf("kind %s: must be KIND_OS or KIND_TRANSPORT", k)
}

// Lock is the content of plugins.lock: the plugins the admin allows, each
// pinned by sha256, with what the plugin said about itself at lock time.
type Lock struct {
	// APIVersion is the lock file format, LockAPIVersion.
	APIVersion int `json:"apiVersion"`
	// Plugins are the locked binaries, sorted by file name when written.
	Plugins []Entry `json:"plugins"`
}

// Entry is one locked plugin binary.
type Entry struct {
	// File is the binary's name in the plugin directory,
	// gitlab-runner-kubevirt-plugin-<label>.
	File string `json:"file"`
	// SHA256 is the binary's digest, 64 lower-case hex digits.
	SHA256 string `json:"sha256"`
	// Name is the plugin's name from GetInfo, a DNS-1123 label. It usually
	// equals the file name's suffix; two files may carry the same name (two
	// versions side by side), and then the highest version is used.
	Name string `json:"name"`
	// Kind is "os" or "transport".
	Kind Kind `json:"kind"`
	// Version is the plugin's semantic version without a "v": 1.2.0.
	Version string `json:"version"`
	// APIVersions are the plugin API versions the plugin serves.
	APIVersions []int `json:"apiVersions"`
	// OSFamily is the guest OS family of an OS plugin ("linux",
	// "windows"); empty for transports.
	OSFamily string `json:"osFamily,omitempty"`
	// Shells are the GitLab shells an OS plugin serves ("bash", "pwsh");
	// empty for transports.
	Shells []string `json:"shells,omitempty"`
	// Capabilities are the plugin's feature flags ("password", "upload").
	Capabilities []string `json:"capabilities"`
}

// String names the entry for messages: "linux-cloudinit 1.2.0 (os, file
// gitlab-runner-kubevirt-plugin-linux-cloudinit)".
func (e Entry) String() string {
	return fmt.Sprintf("%s %s (%s, file %s)", e.Name, e.Version, e.Kind, e.File)
}

// EntryFromInfo builds the lock entry for file with digest sha256 from the
// plugin's GetInfo answer, and validates it.
func EntryFromInfo(file, sha256 string, info *pluginv1.PluginInfo) (Entry, error) {
	if info == nil {
		return Entry{}, errors.New("GetInfo returned nothing")
	}
	kind, err := KindFromProto(info.GetKind())
	if err != nil {
		return Entry{}, fmt.Errorf("GetInfo: %w", err)
	}
	e := Entry{
		File:         file,
		SHA256:       sha256,
		Name:         info.GetName(),
		Kind:         kind,
		Version:      info.GetVersion(),
		OSFamily:     info.GetOsFamily(),
		Shells:       slices.Clone(info.GetShells()),
		Capabilities: slices.Clone(info.GetCapabilities()),
	}
	for _, v := range info.GetApiVersions() {
		e.APIVersions = append(e.APIVersions, int(v))
	}
	if err := e.Validate(); err != nil {
		return Entry{}, fmt.Errorf("GetInfo: %w", err)
	}
	return e, nil
}

// Validate checks every field; the error names each bad field, its value
// and the rule.
func (e Entry) Validate() error {
	var errs []error
	for _, fe := range e.check() {
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// SupportsAPI reports whether the plugin serves API version v.
func (e Entry) SupportsAPI(v int) bool { return slices.Contains(e.APIVersions, v) }

// Serves reports whether an OS plugin runs scripts of the given shell.
func (e Entry) Serves(shell string) bool { return e.Kind == KindOS && slices.Contains(e.Shells, shell) }

// supportedAPIVersions are the plugin API versions this core speaks.
func supportedAPIVersions() []int { return []int{pluginapi.APIVersion1} }

// usable reports whether this core can talk to the plugin at all.
func (e Entry) usable() bool {
	for _, v := range supportedAPIVersions() {
		if e.SupportsAPI(v) {
			return true
		}
	}
	return false
}

// fieldError is a refused field value: `field "value": rule`.
type fieldError struct {
	Field string
	Value string
	Rule  string
}

// Error formats as `field "value": rule`, the value cut to a readable length.
func (f fieldError) Error() string {
	v := f.Value
	if len(v) > maxShownValueLn {
		v = v[:maxShownValueLn] + "..."
	}
	return fmt.Sprintf("%s %q: %s", f.Field, v, f.Rule)
}

// isSHA256Hex reports whether s is 64 lower-case hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// check returns every field error of e, in field order.
func (e Entry) check() []fieldError {
	var errs []fieldError
	add := func(field, value, rule string, args ...any) {
		errs = append(errs, fieldError{Field: field, Value: value, Rule: fmt.Sprintf(rule, args...)})
	}
	if rule := fileRule(e.File); rule != "" {
		add("file", e.File, "%s", rule)
	}
	if !isSHA256Hex(e.SHA256) {
		add("sha256", e.SHA256, "must be the file's sha256 as 64 lower-case hex digits")
	}
	if rule := labelRule(e.Name); rule != "" {
		add("name", e.Name, "%s", rule)
	}
	switch e.Kind {
	case KindOS, KindTransport:
	default:
		add("kind", string(e.Kind), "must be %q or %q", KindOS, KindTransport)
	}
	if rule := versionRule(e.Version); rule != "" {
		add("version", e.Version, "%s", rule)
	}
	if len(e.APIVersions) == 0 {
		add("apiVersions", "[]", "must list at least one plugin API version (the core speaks %v)", supportedAPIVersions())
	}
	if len(e.APIVersions) > maxListLen {
		add("apiVersions", fmt.Sprint(len(e.APIVersions)), "must list at most %d versions", maxListLen)
	}
	for i, v := range e.APIVersions {
		field := fmt.Sprintf("apiVersions[%d]", i)
		if v < 1 || v > 1<<16 {
			add(field, fmt.Sprint(v), "must be an API version between 1 and 65536")
		} else if slices.Index(e.APIVersions, v) < i {
			add(field, fmt.Sprint(v), "is listed twice")
		}
	}
	switch e.Kind {
	case KindOS:
		if rule := labelRule(e.OSFamily); rule != "" {
			add("osFamily", e.OSFamily, "an os plugin's OS family (linux, windows, ...) %s", rule)
		}
		if len(e.Shells) == 0 {
			add("shells", "[]", "an os plugin must serve at least one shell (bash, pwsh, ...)")
		}
	case KindTransport:
		if e.OSFamily != "" {
			add("osFamily", e.OSFamily, "must be empty for a transport plugin")
		}
		if len(e.Shells) != 0 {
			add("shells", strings.Join(e.Shells, ","), "must be empty for a transport plugin")
		}
	}
	errs = append(errs, checkTokens("shells", e.Shells)...)
	errs = append(errs, checkTokens("capabilities", e.Capabilities)...)
	return errs
}

// checkTokens validates a list of DNS-1123 labels without duplicates.
func checkTokens(field string, list []string) []fieldError {
	var errs []fieldError
	if len(list) > maxListLen {
		errs = append(errs, fieldError{Field: field, Value: fmt.Sprint(len(list)), Rule: fmt.Sprintf("must list at most %d entries", maxListLen)})
		return errs
	}
	for i, s := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if rule := labelRule(s); rule != "" {
			errs = append(errs, fieldError{Field: f, Value: s, Rule: rule})
		} else if slices.Index(list, s) < i {
			errs = append(errs, fieldError{Field: f, Value: s, Rule: "is listed twice"})
		}
	}
	return errs
}

// labelRule returns "" if s is a DNS-1123 label, else the rule it breaks.
func labelRule(s string) string {
	if msgs := validation.IsDNS1123Label(s); len(msgs) > 0 {
		return "must be a DNS-1123 label: " + strings.Join(msgs, "; ")
	}
	return ""
}

// fileRule returns "" if name is a valid plugin file name, else the rule it
// breaks.
func fileRule(name string) string {
	suffix, ok := strings.CutPrefix(name, pluginapi.BinaryPrefix)
	if !ok {
		return fmt.Sprintf("must be a file name %s<name>", pluginapi.BinaryPrefix)
	}
	if rule := labelRule(suffix); rule != "" {
		return fmt.Sprintf("the <name> in %s<name> %s", pluginapi.BinaryPrefix, rule)
	}
	return ""
}

// versionRule returns "" if v is a full semantic version without a leading
// "v" (1.2.0, 1.2.0-rc.1, 1.2.0+build.5), else the rule it breaks.
func versionRule(v string) string {
	const rule = "must be a semantic version MAJOR.MINOR.PATCH such as 1.2.0 (https://semver.org)"
	switch {
	case len(v) > maxVersionLen:
		return fmt.Sprintf("must be at most %d characters", maxVersionLen)
	case strings.HasPrefix(v, "v"):
		return rule + ", without a leading v"
	}
	sv := "v" + v
	// semver.Canonical drops +build and completes "1.2" to "v1.2.0";
	// requiring it to equal the input (minus build) refuses shorthands.
	withoutBuild, _, _ := strings.Cut(sv, "+")
	if !semver.IsValid(sv) || semver.Canonical(sv) != withoutBuild {
		return rule
	}
	return ""
}

// compareVersions orders two valid entry versions by semantic-version
// precedence.
func compareVersions(a, b string) int { return semver.Compare("v"+a, "v"+b) }

// Validate checks the format version, every entry and that no file is
// listed twice.
func (l *Lock) Validate() error {
	var errs []error
	if l.APIVersion != LockAPIVersion {
		errs = append(errs, fieldError{Field: "apiVersion", Value: fmt.Sprint(l.APIVersion), Rule: fmt.Sprintf("this gitlab-runner-kubevirt reads lock format %d only; re-run `gitlab-runner-kubevirt plugins lock`", LockAPIVersion)})
	}
	if len(l.Plugins) > maxLockEntries {
		errs = append(errs, fieldError{Field: "plugins", Value: fmt.Sprint(len(l.Plugins)), Rule: fmt.Sprintf("must list at most %d plugins", maxLockEntries)})
	}
	for i, e := range l.Plugins {
		for _, fe := range e.check() {
			fe.Field = fmt.Sprintf("plugins[%d].%s", i, fe.Field)
			errs = append(errs, fe)
		}
		if j := l.indexOfFile(e.File); j < i {
			errs = append(errs, fieldError{Field: fmt.Sprintf("plugins[%d].file", i), Value: e.File, Rule: fmt.Sprintf("is already locked by plugins[%d]; list each file once", j)})
		}
	}
	return errors.Join(errs...)
}

func (l *Lock) indexOfFile(file string) int {
	return slices.IndexFunc(l.Plugins, func(e Entry) bool { return e.File == file })
}

// Entry returns the entry locking file, if any.
func (l *Lock) Entry(file string) (Entry, bool) {
	if i := l.indexOfFile(file); i >= 0 {
		return l.Plugins[i], true
	}
	return Entry{}, false
}

// Marshal validates the lock and returns its canonical JSON: entries sorted
// by file name, two-space indent, a final newline.
func (l *Lock) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("invalid lock: %w", err)
	}
	out := Lock{APIVersion: l.APIVersion, Plugins: slices.Clone(l.Plugins)}
	if out.Plugins == nil {
		out.Plugins = []Entry{}
	}
	slices.SortFunc(out.Plugins, func(a, b Entry) int { return strings.Compare(a.File, b.File) })
	for i := range out.Plugins {
		if out.Plugins[i].Capabilities == nil {
			out.Plugins[i].Capabilities = []string{}
		}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal lock: %w", err)
	}
	return append(data, '\n'), nil
}

// ReadLock reads and parses dir/plugins.lock. A missing file is an error
// that wraps fs.ErrNotExist and says to run `plugins lock`.
func ReadLock(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no %s in %s: install the plugins there, then run `gitlab-runner-kubevirt plugins lock`: %w", LockFileName, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	l, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; fix it or re-run `gitlab-runner-kubevirt plugins lock`", path, err)
	}
	return l, nil
}

// WriteLock validates l and writes it to dir/plugins.lock atomically: a
// temporary file in dir, mode 0644, synced, then renamed over the old lock.
func WriteLock(dir string, l *Lock) (err error) {
	data, err := l.Marshal()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, LockFileName)
	tmp, err := os.CreateTemp(dir, "."+LockFileName+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	// Make the rename itself durable.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
