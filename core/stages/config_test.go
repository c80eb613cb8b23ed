package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// catalogFacts adapts a pluginhost.Catalog to OSCatalog, as the command
// layer does.
type catalogFacts struct{ cat *pluginhost.Catalog }

func (c catalogFacts) OSByName(name string) (OSPluginFacts, error) {
	e, err := c.cat.ByName(pluginhost.KindOS, name)
	return OSPluginFacts{Name: e.Name, OSFamily: e.OSFamily, Shells: e.Shells}, err
}

func (c catalogFacts) OSForShell(shell string) (OSPluginFacts, error) {
	e, err := c.cat.ForShell(shell)
	return OSPluginFacts{Name: e.Name, OSFamily: e.OSFamily, Shells: e.Shells}, err
}

// lockedDir writes a plugin directory with plugins.lock locking a Linux
// (bash) and a Windows (pwsh) OS plugin and a transport. Each "binary" is a
// shell script that creates marker when it runs, so a test can tell
// whether the stage started a plugin.
func lockedDir(t *testing.T, marker string) string {
	t.Helper()
	dir := t.TempDir()
	script := []byte("#!/bin/sh\ntouch " + marker + "\nexit 1\n")
	sum := sha256.Sum256(script)
	entries := []pluginhost.Entry{
		{Name: "linux-cloudinit", Kind: pluginhost.KindOS, OSFamily: "linux", Shells: []string{"bash", "sh"}},
		{Name: "windows-cloudbase", Kind: pluginhost.KindOS, OSFamily: "windows", Shells: []string{"pwsh"}},
		{Name: "transport-ssh", Kind: pluginhost.KindTransport},
	}
	lock := &pluginhost.Lock{APIVersion: pluginhost.LockAPIVersion}
	for _, e := range entries {
		e.File = pluginapi.BinaryPrefix + e.Name
		e.SHA256 = hex.EncodeToString(sum[:])
		e.Version = "1.0.0"
		e.APIVersions = []int{pluginapi.APIVersion1}
		if err := os.WriteFile(filepath.Join(dir, e.File), script, 0o755); err != nil {
			t.Fatal(err)
		}
		lock.Plugins = append(lock.Plugins, e)
	}
	if err := pluginhost.WriteLock(dir, lock); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConfig(t *testing.T) {
	jobIDs := map[string]string{"CUSTOM_ENV_CI_RUNNER_ID": "12", "CUSTOM_ENV_CI_JOB_ID": "345"}
	tests := []struct {
		name    string
		opts    ConfigOptions
		env     map[string]string
		tamper  func(t *testing.T, dir string)
		want    ConfigOutput
		wantErr []string
	}{
		{name: "bash on linux, hostname from the job", opts: ConfigOptions{Shell: "bash", Username: "runner", NamePrefix: "ci"}, env: jobIDs,
			want: ConfigOutput{BuildsDir: "/home/runner/builds", CacheDir: "/home/runner/cache", Hostname: "ci-12-345", Shell: "bash"}},
		{name: "root's home", opts: ConfigOptions{Shell: "bash", Username: "root"},
			want: ConfigOutput{BuildsDir: "/root/builds", CacheDir: "/root/cache", Hostname: DriverName, Shell: "bash"}},
		{name: "pwsh on windows", opts: ConfigOptions{Shell: "pwsh", Username: "Administrator"},
			want: ConfigOutput{BuildsDir: `C:\builds`, CacheDir: `C:\cache`, Hostname: DriverName, Shell: "pwsh"}},
		{name: "plugin by name", opts: ConfigOptions{Shell: "sh", OSPlugin: "linux-cloudinit", Username: "u"},
			want: ConfigOutput{BuildsDir: "/home/u/builds", CacheDir: "/home/u/cache", Hostname: DriverName, Shell: "sh"}},
		{name: "directories set by the admin", opts: ConfigOptions{Shell: "bash", Username: "u", BuildsDir: "/b", CacheDir: "/c"},
			want: ConfigOutput{BuildsDir: "/b", CacheDir: "/c", Hostname: DriverName, Shell: "bash"}},
		{name: "no shell", opts: ConfigOptions{}, wantErr: []string{`--shell "": is required`}},
		{name: "named plugin does not serve the shell", opts: ConfigOptions{Shell: "pwsh", OSPlugin: "linux-cloudinit"},
			wantErr: []string{`--shell "pwsh": is not served by os plugin linux-cloudinit (it serves bash, sh)`}},
		{name: "no plugin serves the shell", opts: ConfigOptions{Shell: "fish"},
			wantErr: []string{`no os plugin in plugins.lock serves shell "fish"`, "linux-cloudinit, windows-cloudbase", "plugins lock"}},
		{name: "named plugin is a transport", opts: ConfigOptions{Shell: "bash", OSPlugin: "transport-ssh"},
			wantErr: []string{`no os plugin named "transport-ssh"`}},
		{name: "locked plugin file removed", opts: ConfigOptions{Shell: "bash"},
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, pluginapi.BinaryPrefix+"linux-cloudinit")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{pluginapi.BinaryPrefix + "linux-cloudinit", "missing", "no such file", "reinstall the plugin"}},
		{name: "no lock", opts: ConfigOptions{Shell: "bash"},
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, pluginhost.LockFileName)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{"no plugins.lock in", "run `gitlab-runner-kubevirt plugins lock`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			dir := lockedDir(t, marker)
			if tt.tamper != nil {
				tt.tamper(t, dir)
			}
			tt.opts.Version = "1.2.3"
			var out bytes.Buffer
			err := Config(context.Background(), jobenv.FromMap(tt.env), catalogFacts{pluginhost.NewCatalog(dir, nil)}, tt.opts, &out)
			if _, serr := os.Stat(marker); serr == nil {
				t.Error("the config stage started a plugin binary")
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Config succeeded with output %s", out.String())
				}
				if code, _ := ExitStatus(jobenv.FromMap(map[string]string{"SYSTEM_FAILURE_EXIT_CODE": "3"}), err); code != 3 {
					t.Errorf("exit code %d, want the system failure code 3 (error: %v)", code, err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\ndoes not contain %q", err, w)
					}
				}
				if out.Len() != 0 {
					t.Errorf("a failed config printed %q", out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			var got ConfigOutput
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output %q is not JSON: %v", out.String(), err)
			}
			tt.want.Driver = Driver{Name: DriverName, Version: "1.2.3"}
			tt.want.JobEnv = map[string]string{}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("config output\n got %s\nwant %s", gotJSON, wantJSON)
			}
		})
	}
}
