package sshtransport

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Upload writes content to header.Path on the guest over SFTP. It writes a
// temporary file in the same directory, hashing the bytes as they are
// sent; when the size and sha256 match the header it sets header.Mode (0
// keeps the server's default) and renames the file into place, replacing
// an existing file. On a mismatch or any error the temporary file is
// removed and the destination is left untouched.
func (t *Transport) Upload(ctx context.Context, header *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error) {
	if header == nil {
		return nil, pluginapi.InvalidInput("upload header", "", "is required")
	}
	e, err := parseTarget(header.GetTarget())
	if err != nil {
		return nil, err
	}
	dest := header.GetPath()
	dir, base := splitPath(dest)
	if base == "" || base == "." || base == ".." || strings.ContainsRune(dest, 0) {
		return nil, pluginapi.InvalidInput("path", dest, "must name a file (not a directory) and contain no NUL byte")
	}
	if header.GetMode()&^0o7777 != 0 {
		return nil, pluginapi.InvalidInput("mode", "0"+strconv.FormatUint(uint64(header.GetMode()), 8), "must be permission bits within 07777")
	}
	if header.GetSize() < 0 {
		return nil, pluginapi.InvalidInput("size", strconv.FormatInt(header.GetSize(), 10), "must not be negative")
	}
	want := header.GetSha256()
	if !sha256Pattern.MatchString(want) {
		return nil, pluginapi.InvalidInput("sha256", want, "must be 64 lower-case hex digits")
	}

	_, sc, err := connect(ctx, t, e, func(c *ssh.Client) (*sftp.Client, error) {
		return sftp.NewClient(c, sftp.UseConcurrentWrites(true))
	})
	if err != nil {
		return nil, fmt.Errorf("upload %s to %s: start sftp: %w", dest, e, err)
	}
	defer sc.Close()

	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("upload %s to %s: %w", dest, e, err)
	}
	tmp := dir + "." + base + ".upload-" + hex.EncodeToString(suffix)
	n, got, err := writeHashed(ctx, sc, tmp, content, header.GetSize())
	if err == nil && (n != header.GetSize() || got != want) {
		err = fmt.Errorf("content mismatch: received %d bytes with sha256 %s, the header announced %d bytes with sha256 %s; the file was not kept",
			n, got, header.GetSize(), want)
	}
	if err == nil && header.GetMode() != 0 {
		if cerr := sc.Chmod(tmp, os.FileMode(header.GetMode())); cerr != nil {
			if e.opts.ShellDialect != DialectPowerShell {
				err = fmt.Errorf("set mode %#o: %w", header.GetMode(), cerr)
			} else {
				// Windows has no POSIX permission bits.
				t.log.Debug("ignoring chmod failure on a powershell guest", "target", e.String(), "error", cerr)
			}
		}
	}
	if err == nil {
		err = rename(sc, tmp, dest)
	}
	if err != nil {
		if rerr := sc.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			t.log.Warn("could not remove a temporary upload", "target", e.String(), "path", tmp, "error", rerr)
		}
		return nil, fmt.Errorf("upload %s to %s: %w", dest, e, err)
	}
	t.log.Debug("uploaded", "target", e.String(), "path", dest, "size", n)
	return &pluginv1.UploadResponse{Size: n, Sha256: got}, nil
}

// writeHashed creates path exclusively and copies content into it (at most
// size+1 bytes, so a longer content shows as a size mismatch), returning
// the byte count and the sha256 of what was written.
func writeHashed(ctx context.Context, sc *sftp.Client, path string, content io.Reader, size int64) (int64, string, error) {
	f, err := sc.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return 0, "", fmt.Errorf("create %s: %w", path, err)
	}
	h := sha256.New()
	// A LimitedReader lets sftp pipeline its writes.
	src := &io.LimitedReader{R: io.TeeReader(ctxReader{ctx, content}, h), N: size + 1}
	n, err := f.ReadFrom(src)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", path, cerr)
	}
	if err != nil {
		return n, "", fmt.Errorf("write %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// rename moves tmp over dest, atomically where the server supports
// OpenSSH's posix-rename extension; plain SFTP rename refuses to replace a
// file, so without the extension dest is removed first.
func rename(sc *sftp.Client, tmp, dest string) error {
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		if err := sc.PosixRename(tmp, dest); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, dest, err)
		}
		return nil
	}
	if err := sc.Remove(dest); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", dest, err)
	}
	if err := sc.Rename(tmp, dest); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, dest, err)
	}
	return nil
}

// splitPath splits a guest path after its last '/' or '\' (Windows guests);
// dir keeps the separator.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexAny(p, `/\`)
	return p[:i+1], p[i+1:]
}

// ctxReader fails reads once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
