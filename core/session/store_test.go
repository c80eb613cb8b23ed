package session_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

func state() *pluginapi.SessionState {
	return &pluginapi.SessionState{
		Format: pluginapi.SessionStateFormat, Name: "transport-ssh", Path: "/opt/plugins/p", SHA256: strings.Repeat("ab", 32),
		APIVersion: pluginapi.APIVersion1, Network: "unix", Addr: "/tmp/s/plugin1", Pid: 4242, StartTime: 99,
		ClientCert: []byte("cert"), ClientKey: []byte("key"), ServerCert: []byte("server"),
	}
}

func TestStoreRoundTripAndRefusals(t *testing.T) {
	const token, vmi, uid = "glcbt-job-token", "runner-1-2", "uid-1"
	for _, tc := range []struct {
		name string
		// mutate changes the saved file or the reader.
		token, vmi, uid string
		mutate          func(t *testing.T, path string)
		want            string
		wantErr         error
	}{
		{name: "same job", token: token, vmi: vmi, uid: uid},
		{name: "cleanup without the UID", token: token, vmi: vmi, uid: ""},
		{name: "another job's token", token: "glcbt-other", vmi: vmi, uid: uid, want: "not written by this job"},
		{name: "another VMI", token: token, vmi: "runner-1-3", uid: uid, want: "not written by this job"},
		{name: "re-created VMI", token: token, vmi: vmi, uid: "uid-2", want: "re-created"},
		{name: "corrupt", token: token, vmi: vmi, uid: uid, mutate: func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 1
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "decryption failed"},
		{name: "not a session file", token: token, vmi: vmi, uid: uid, mutate: func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "not a session file"},
		{name: "readable by others", token: token, vmi: vmi, uid: uid, mutate: func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "readable by its owner only"},
		{name: "removed", token: token, vmi: vmi, uid: uid, mutate: func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, wantErr: session.ErrNoSession},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			w, err := session.NewStore(tmp, token, vmi)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Save(uid, state()); err != nil {
				t.Fatal(err)
			}
			for path, want := range map[string]os.FileMode{w.Dir(): 0o700, w.Path(): 0o600} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
				}
			}
			raw, _ := os.ReadFile(w.Path())
			for _, secret := range []string{token, "cert", "server", vmi} {
				if strings.Contains(string(raw), secret) {
					t.Errorf("the session file holds %q in clear", secret)
				}
			}
			if tc.mutate != nil {
				tc.mutate(t, w.Path())
			}
			r, err := session.NewStore(tmp, tc.token, tc.vmi)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Load(tc.uid)
			switch {
			case tc.want == "" && tc.wantErr == nil:
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got.Pid != 4242 || got.Addr != "/tmp/s/plugin1" || string(got.ClientKey) != "key" {
					t.Errorf("Load = %+v, want what was saved", got)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Load error %v, want %v", err, tc.wantErr)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load error %v, want one containing %q", err, tc.want)
				}
			}
			if err := r.Remove(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(w.Dir()); !os.IsNotExist(err) {
				t.Errorf("session directory left after Remove (stat: %v)", err)
			}
		})
	}
}

func TestNewStoreAndManagerInputs(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		name, tmpdir, token, vmi, want string
	}{
		{name: "relative TMPDIR", tmpdir: "tmp", token: "t", vmi: "v", want: `TMPDIR "tmp" must be an absolute path`},
		{name: "no token", tmpdir: tmp, vmi: "v", want: "CUSTOM_ENV_CI_JOB_TOKEN is empty"},
		{name: "no VMI", tmpdir: tmp, token: "t", want: "VMI name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := session.NewStore(tc.tmpdir, tc.token, tc.vmi)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewStore = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	if _, err := session.New(env(map[string]string{"TMPDIR": tmp}), "v", 0, session.Options{}, nil); err == nil || !strings.Contains(err.Error(), session.EnvJobToken) {
		t.Errorf("New without a job token = %v, want an error naming %s", err, session.EnvJobToken)
	}
	if _, err := session.New(env(map[string]string{session.EnvJobToken: "t"}), "v", 0, session.Options{}, nil); err == nil || !strings.Contains(err.Error(), "TMPDIR") {
		t.Errorf("New without TMPDIR = %v, want an error naming TMPDIR", err)
	}
	m, err := session.New(env(map[string]string{"TMPDIR": tmp, session.EnvJobToken: "t"}), "v", time.Hour, session.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(tmp, session.DirName, session.FileName); m.Store().Path() != want {
		t.Errorf("session file %s, want %s", m.Store().Path(), want)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		idle time.Duration
		ok   bool
	}{
		{0, true}, {time.Second, true}, {10 * time.Minute, true}, {24 * time.Hour, true},
		{-time.Second, false}, {time.Millisecond, false}, {25 * time.Hour, false},
	} {
		err := session.Options{IdleTimeout: tc.idle}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(idle %s) = %v, want ok %t", tc.idle, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--session-idle-timeout") {
			t.Errorf("error %q does not name --session-idle-timeout", err)
		}
	}
}
