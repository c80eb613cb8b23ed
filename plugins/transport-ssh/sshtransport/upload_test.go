package sshtransport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// leftovers lists the temporary upload files in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".upload-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestUpload(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, _ := newTransport(t)
	content := randomBytes(t, 10<<20)
	old := []byte("previous content\n")
	tests := []struct {
		name     string
		existing []byte // file already at the destination
		content  []byte
		size     int64
		sha      string
		mode     uint32
		wantErr  []string
	}{
		{name: "10 MiB", content: content, size: int64(len(content)), sha: sha256Hex(content), mode: 0o640},
		{name: "replaces a file", existing: old, content: []byte("new\n"), size: 4, sha: sha256Hex([]byte("new\n")), mode: 0o700},
		{name: "empty file", content: nil, size: 0, sha: sha256Hex(nil), mode: 0o600},
		{name: "wrong checksum", existing: old, content: content, size: int64(len(content)), sha: sha256Hex([]byte("other")), mode: 0o640,
			wantErr: []string{"sha256 " + sha256Hex(content), "sha256 " + sha256Hex([]byte("other")), "the file was not kept"}},
		{name: "shorter than announced", content: content[:100], size: 101, sha: sha256Hex(content[:100]),
			wantErr: []string{"received 100 bytes", "announced 101 bytes"}},
		{name: "longer than announced", content: content[:100], size: 99, sha: sha256Hex(content[:99]),
			wantErr: []string{"received 100 bytes", "announced 99 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := guestDir(t)
			dest := filepath.Join(dir, "job script.sh")
			if tt.existing != nil {
				if err := os.WriteFile(dest, tt.existing, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := tr.Upload(context.Background(), &pluginv1.UploadHeader{Target: g.target, Path: dest, Mode: tt.mode, Size: tt.size, Sha256: tt.sha}, bytes.NewReader(tt.content))
			if left := leftovers(t, dir); len(left) > 0 {
				t.Fatalf("temporary files left behind: %v", left)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Upload = %v, want an error", resp)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("error %q does not contain %q", err, want)
					}
				}
				got, rerr := os.ReadFile(dest)
				if tt.existing == nil && !os.IsNotExist(rerr) {
					t.Fatalf("a rejected upload left %s behind (%d bytes, %v)", dest, len(got), rerr)
				}
				if tt.existing != nil && !bytes.Equal(got, tt.existing) {
					t.Fatalf("a rejected upload changed the existing file to %d bytes", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if resp.GetSize() != tt.size || resp.GetSha256() != tt.sha {
				t.Fatalf("Upload = %v, want size %d sha256 %s", resp, tt.size, tt.sha)
			}
			got, err := os.ReadFile(dest)
			if err != nil || !bytes.Equal(got, tt.content) {
				t.Fatalf("file on the guest: %d bytes (%v), want %d bytes", len(got), err, len(tt.content))
			}
			fi, err := os.Stat(dest)
			if err != nil || fi.Mode().Perm() != os.FileMode(tt.mode) {
				t.Fatalf("mode = %v (%v), want %#o", fi.Mode().Perm(), err, tt.mode)
			}
		})
	}
}

func TestUploadInvalidInput(t *testing.T) {
	tr, _ := newTransport(t)
	key, host := newKey(t), newKey(t)
	target := &pluginv1.Target{Host: "127.0.0.1", Port: 1, Username: "u", PrivateKey: key.PrivateKeyPEM, HostKeys: []string{host.AuthorizedKey}}
	good := sha256Hex(nil)
	tests := []struct {
		name    string
		header  *pluginv1.UploadHeader
		wantErr string
	}{
		{name: "no header", header: nil, wantErr: "upload header"},
		{name: "no path", header: &pluginv1.UploadHeader{Target: target, Sha256: good}, wantErr: `path "": must name a file`},
		{name: "directory path", header: &pluginv1.UploadHeader{Target: target, Path: "/tmp/", Sha256: good}, wantErr: `path "/tmp/"`},
		{name: "dot dot", header: &pluginv1.UploadHeader{Target: target, Path: "/tmp/..", Sha256: good}, wantErr: `path "/tmp/.."`},
		{name: "mode beyond permission bits", header: &pluginv1.UploadHeader{Target: target, Path: "/tmp/f", Mode: 0o100644, Sha256: good}, wantErr: `mode "0100644": must be permission bits within 07777`},
		{name: "negative size", header: &pluginv1.UploadHeader{Target: target, Path: "/tmp/f", Size: -1, Sha256: good}, wantErr: `size "-1"`},
		{name: "upper-case sha256", header: &pluginv1.UploadHeader{Target: target, Path: "/tmp/f", Sha256: strings.ToUpper(good)}, wantErr: "must be 64 lower-case hex digits"},
		{name: "short sha256", header: &pluginv1.UploadHeader{Target: target, Path: "/tmp/f", Sha256: "abc"}, wantErr: `sha256 "abc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tr.Upload(context.Background(), tt.header, bytes.NewReader(nil))
			if !pluginapi.IsInvalidInput(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Upload error = %v, want InvalidArgument containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUploadCancelled(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, _ := newTransport(t)
	dir := guestDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	content := randomBytes(t, 1<<20)
	// The reader cancels the upload halfway through.
	r := &cancellingReader{r: bytes.NewReader(content), after: len(content) / 2, cancel: cancel}
	_, err := tr.Upload(ctx, &pluginv1.UploadHeader{Target: g.target, Path: filepath.Join(dir, "f"), Size: int64(len(content)), Sha256: sha256Hex(content)}, r)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled Upload error = %v, want context canceled", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) > 0 {
		t.Fatalf("a cancelled upload left files: %v", entries)
	}
}

type cancellingReader struct {
	r      *bytes.Reader
	read   int
	after  int
	cancel func()
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}
