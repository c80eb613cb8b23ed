package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/crypto/hkdf"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Names of the session directory (in TMPDIR) and file.
const (
	DirName  = "gitlab-runner-kubevirt-session"
	FileName = "transport.session"
)

// fileMagic starts every session file; it also names the format version.
const fileMagic = "GRKVSESS1\n"

// hkdfSalt and the info prefix separate this key from any other use of the
// job token.
const (
	hkdfSalt   = "gitlab-runner-kubevirt session file v1"
	hkdfPrefix = "vmi="
)

// maxFileSize bounds what Load reads.
const maxFileSize = 64 << 10

// ErrNoSession says that the job has no session file.
var ErrNoSession = errors.New("no session file")

// Store is the job's session file. Make one per stage with [NewStore].
type Store struct {
	dir string
	key []byte
	vmi string
}

// payload is the encrypted content of the file.
type payload struct {
	VMI   string                  `json:"vmi"`
	UID   string                  `json:"uid"`
	State *pluginapi.SessionState `json:"state"`
}

// NewStore returns the session store of the job whose TMPDIR is tmpdir and
// whose job token is token, for the VMI called vmi. All three are required.
func NewStore(tmpdir, token, vmi string) (*Store, error) {
	switch {
	case tmpdir == "" || !filepath.IsAbs(tmpdir):
		return nil, fmt.Errorf("session store: TMPDIR %q must be an absolute path", tmpdir)
	case token == "":
		return nil, errors.New("session store: CUSTOM_ENV_CI_JOB_TOKEN is empty")
	case vmi == "":
		return nil, errors.New("session store: the VMI name is empty")
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(token), []byte(hkdfSalt), []byte(hkdfPrefix+vmi)), key); err != nil {
		return nil, fmt.Errorf("session store: derive key: %w", err)
	}
	return &Store{dir: filepath.Join(tmpdir, DirName), key: key, vmi: vmi}, nil
}

// Path returns the session file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Dir returns the session directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Save writes st for the VMI with UID uid: directory 0700, file 0600,
// written to a temporary file and renamed into place.
func (s *Store) Save(uid string, st *pluginapi.SessionState) error {
	if uid == "" {
		return errors.New("save session: the VMI UID is empty")
	}
	if err := st.Validate(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	plain, err := json.Marshal(payload{VMI: s.vmi, UID: uid, State: st})
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	aead, err := s.aead()
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("save session: nonce: %w", err)
	}
	out := append([]byte(fileMagic), nonce...)
	out = aead.Seal(out, nonce, plain, []byte(fileMagic+s.vmi))
	clear(plain)

	if err := s.MakeDir(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	f, err := os.CreateTemp(s.dir, FileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	// CreateTemp makes the file 0600.
	if _, err := f.Write(out); err != nil {
		_ = f.Close()
		return fmt.Errorf("save session %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("save session %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save session %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.Path()); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// Load reads and decrypts the session file. A non-empty uid must match the
// VMI UID the file was saved for (cleanup passes "" to end a session whose
// VMI is already gone). ErrNoSession says there is no file.
func (s *Store) Load(uid string) (*pluginapi.SessionState, error) {
	f, err := os.Open(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load session %s: mode %s: must be a regular file readable by its owner only", s.Path(), fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("load session %s: larger than %d bytes", s.Path(), maxFileSize)
	}
	aead, err := s.aead()
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if len(b) < len(fileMagic)+aead.NonceSize() || string(b[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("load session %s: not a session file of this version", s.Path())
	}
	b = b[len(fileMagic):]
	nonce, sealed := b[:aead.NonceSize()], b[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, []byte(fileMagic+s.vmi))
	if err != nil {
		return nil, fmt.Errorf("load session %s: it was not written by this job for VMI %s (decryption failed)", s.Path(), s.vmi)
	}
	defer clear(plain)
	var p payload
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("load session %s: %w", s.Path(), err)
	}
	if p.VMI != s.vmi {
		return nil, fmt.Errorf("load session %s: it is for VMI %q, not %q", s.Path(), p.VMI, s.vmi)
	}
	if uid != "" && p.UID != uid {
		return nil, fmt.Errorf("load session %s: it is for VMI %s with UID %s; the VMI now has UID %s (re-created)", s.Path(), s.vmi, p.UID, uid)
	}
	if err := p.State.Validate(); err != nil {
		return nil, fmt.Errorf("load session %s: %w", s.Path(), err)
	}
	return p.State, nil
}

// MakeDir creates the session directory, owner-only (0700). prepare
// creates it before it starts the transport plugin, whose unix socket goes
// there too.
func (s *Store) MakeDir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("session directory: %w", err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("session directory: %w", err)
	}
	return nil
}

// Remove deletes the session file and directory; a missing file is fine.
func (s *Store) Remove() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove session: %w", err)
	}
	return nil
}
