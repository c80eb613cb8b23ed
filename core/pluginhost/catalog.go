package pluginhost

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
)

// Catalog answers what the locked plugins are from plugins.lock alone,
// without starting any: `plugins lock` records each plugin's GetInfo
// answer (kind, OS family, shells, ...) beside its sha256. A stage that
// only needs those facts (config) uses a Catalog instead of a [Host] and
// starts no process. The binaries themselves are verified when a Host
// starts them.
//
// A Catalog reads the lock once, on first use; it is not safe for
// concurrent use.
type Catalog struct {
	dir  string
	log  hclog.Logger
	lock *Lock
}

// NewCatalog returns a Catalog of the plugin directory dir (see
// ResolveDir). log receives the warning about several locked plugins of
// one name (see [Lock.ByName]); nil discards it.
func NewCatalog(dir string, log hclog.Logger) *Catalog {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Catalog{dir: dir, log: log}
}

// read returns the lock, reading it on first use.
func (c *Catalog) read() (*Lock, error) {
	if c.lock != nil {
		return c.lock, nil
	}
	l, err := ReadLock(c.dir)
	if err != nil {
		return nil, err
	}
	c.lock = l
	return l, nil
}

// ByName returns the lock entry of the plugin of kind and name (see
// [Lock.ByName]) after checking that its file is still a regular file in
// the directory.
func (c *Catalog) ByName(kind Kind, name string) (Entry, error) {
	l, err := c.read()
	if err != nil {
		return Entry{}, err
	}
	e, err := l.ByName(c.log, kind, name)
	if err != nil {
		return Entry{}, fmt.Errorf("plugin directory %s: %w", c.dir, err)
	}
	return c.present(e)
}

// ForShell returns the lock entry of the OS plugin serving shell (see
// [Lock.ForShell]) after checking that its file is still a regular file in
// the directory.
func (c *Catalog) ForShell(shell string) (Entry, error) {
	l, err := c.read()
	if err != nil {
		return Entry{}, err
	}
	e, err := l.ForShell(c.log, shell)
	if err != nil {
		return Entry{}, fmt.Errorf("plugin directory %s: %w", c.dir, err)
	}
	return c.present(e)
}

// present checks e's file with a stat (no read: the digest is checked when
// the plugin starts).
func (c *Catalog) present(e Entry) (Entry, error) {
	if err := checkLockedFile(c.path(e)); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (c *Catalog) path(e Entry) string { return filepath.Join(c.dir, e.File) }
