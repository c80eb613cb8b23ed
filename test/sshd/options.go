package sshd

import (
	"fmt"
	"net"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults applied by Start for zero-valued options.
const (
	DefaultListenAddr   = "127.0.0.1:0"
	DefaultMaxStartups  = 1000
	DefaultMaxSessions  = 1000
	DefaultLogLevel     = "VERBOSE"
	DefaultStartTimeout = 10 * time.Second
)

// Options configures a test sshd. The zero value is usable: sshd on a free
// port of 127.0.0.1 with a generated ed25519 host key, key authentication
// only, for the current user, accepting every environment variable.
type Options struct {
	// ListenAddr is "host:port" with host an IPv4 loopback address
	// (127.x.y.z). Port 0 picks a free port. Default "127.0.0.1:0".
	ListenAddr string
	// HostKey is the host private key in PEM format (OpenSSH or PKCS#8).
	// Nil generates a fresh ed25519 key.
	HostKey []byte
	// AuthorizedKeys are the public keys (authorized_keys lines) allowed to
	// log in as User.
	AuthorizedKeys []string
	// User is the only account allowed to log in. Empty means the user
	// running the test (root in CI).
	User string
	// PasswordAuth turns on password authentication. It needs a real
	// account with a password, e.g. from CreateUser (or root's, which
	// tests must never change).
	PasswordAuth bool
	// AcceptEnv lists the environment variable patterns sshd accepts from
	// clients. Nil accepts every variable ("*"); an empty, non-nil slice
	// accepts none.
	AcceptEnv []string
	// MaxStartups and MaxSessions; zero means DefaultMaxStartups and
	// DefaultMaxSessions.
	MaxStartups int
	MaxSessions int
	// LogLevel is sshd's LogLevel (QUIET, FATAL, ERROR, INFO, VERBOSE,
	// DEBUG, DEBUG1..3). Default VERBOSE.
	LogLevel string
	// StartTimeout bounds how long Start waits for sshd to listen when ctx
	// has no earlier deadline. Default DefaultStartTimeout.
	StartTimeout time.Duration
}

var (
	userPattern      = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	envPattern       = regexp.MustCompile(`^[A-Za-z0-9_*?]+$`)
	logLevels        = []string{"QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3"}
	loopbackNetwork  = net.IPNet{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)}
	errNoLoopbackMsg = "must be host:port with an IPv4 loopback host (127.x.y.z) and a port in 0..65535"
)

// config is Options after validation and defaults.
type config struct {
	host           string
	port           int
	hostKey        []byte
	hostPublicKey  string
	authorizedKeys []string
	user           string
	passwordAuth   bool
	acceptEnv      []string
	maxStartups    int
	maxSessions    int
	logLevel       string
	startTimeout   time.Duration
}

// validate checks opts and fills in defaults. Every error names the option,
// the value and the rule; HostKey's content is never quoted.
func (opts Options) validate() (config, error) {
	c := config{
		passwordAuth: opts.PasswordAuth,
		maxStartups:  opts.MaxStartups,
		maxSessions:  opts.MaxSessions,
		logLevel:     strings.ToUpper(opts.LogLevel),
		startTimeout: opts.StartTimeout,
	}

	addr := opts.ListenAddr
	if addr == "" {
		addr = DefaultListenAddr
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return c, fmt.Errorf("option ListenAddr %q: %s", addr, errNoLoopbackMsg)
	}
	ip := net.ParseIP(host)
	port, perr := strconv.Atoi(portStr)
	if ip == nil || ip.To4() == nil || !loopbackNetwork.Contains(ip) || perr != nil || port < 0 || port > 65535 {
		return c, fmt.Errorf("option ListenAddr %q: %s", addr, errNoLoopbackMsg)
	}
	c.host, c.port = ip.To4().String(), port

	if opts.HostKey == nil {
		kp, err := NewKeyPair()
		if err != nil {
			return c, fmt.Errorf("generate host key: %w", err)
		}
		c.hostKey, c.hostPublicKey = kp.PrivateKeyPEM, kp.AuthorizedKey
	} else {
		kp, err := ParseKeyPair(opts.HostKey)
		if err != nil {
			return c, fmt.Errorf("option HostKey: must be an unencrypted private key in PEM format: %w", err)
		}
		c.hostKey, c.hostPublicKey = opts.HostKey, kp.AuthorizedKey
	}

	for i, line := range opts.AuthorizedKeys {
		if strings.ContainsAny(line, "\r\n") {
			return c, fmt.Errorf("option AuthorizedKeys[%d] %q: must be a single authorized_keys line", i, line)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return c, fmt.Errorf("option AuthorizedKeys[%d] %q: must be an authorized_keys line: %w", i, line, err)
		}
		c.authorizedKeys = append(c.authorizedKeys, line)
	}

	c.user = opts.User
	if c.user == "" {
		u, err := user.Current()
		if err != nil {
			return c, fmt.Errorf("find the current user for option User: %w", err)
		}
		c.user = u.Username
	}
	if !userPattern.MatchString(c.user) {
		return c, fmt.Errorf("option User %q: must match %s", c.user, userPattern)
	}
	if _, err := user.Lookup(c.user); err != nil {
		return c, fmt.Errorf("option User %q: must be an existing account: %w", c.user, err)
	}

	if opts.AcceptEnv == nil {
		c.acceptEnv = []string{"*"}
	}
	for i, p := range opts.AcceptEnv {
		if !envPattern.MatchString(p) {
			return c, fmt.Errorf("option AcceptEnv[%d] %q: must match %s", i, p, envPattern)
		}
		c.acceptEnv = append(c.acceptEnv, p)
	}

	if c.maxStartups == 0 {
		c.maxStartups = DefaultMaxStartups
	}
	if c.maxStartups < 1 || c.maxStartups > 100000 {
		return c, fmt.Errorf("option MaxStartups %d: must be in 1..100000", opts.MaxStartups)
	}
	if c.maxSessions == 0 {
		c.maxSessions = DefaultMaxSessions
	}
	if c.maxSessions < 1 || c.maxSessions > 100000 {
		return c, fmt.Errorf("option MaxSessions %d: must be in 1..100000", opts.MaxSessions)
	}

	if c.logLevel == "" {
		c.logLevel = DefaultLogLevel
	}
	valid := false
	for _, l := range logLevels {
		valid = valid || l == c.logLevel
	}
	if !valid {
		return c, fmt.Errorf("option LogLevel %q: must be one of %s", opts.LogLevel, strings.Join(logLevels, ", "))
	}

	if c.startTimeout == 0 {
		c.startTimeout = DefaultStartTimeout
	}
	if c.startTimeout < 0 {
		return c, fmt.Errorf("option StartTimeout %s: must not be negative", opts.StartTimeout)
	}
	return c, nil
}

// sshdConfig renders the sshd_config for c listening on port, with its
// files in dir.
func (c config) sshdConfig(dir string, port int) string {
	permitRoot := "no"
	if c.user == "root" {
		permitRoot = "prohibit-password"
		if c.passwordAuth {
			permitRoot = "yes"
		}
	}
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	lines := []string{
		"# generated by test/sshd",
		fmt.Sprintf("ListenAddress %s:%d", c.host, port),
		"HostKey " + dir + "/ssh_host_key",
		"PidFile " + dir + "/sshd.pid",
		"AuthorizedKeysFile " + dir + "/authorized_keys",
		"AllowUsers " + c.user,
		"PermitRootLogin " + permitRoot,
		"PubkeyAuthentication yes",
		"PasswordAuthentication " + yesNo(c.passwordAuth),
		"PermitEmptyPasswords no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"X11Forwarding no",
		"PermitUserEnvironment no",
		"Subsystem sftp internal-sftp",
		fmt.Sprintf("MaxStartups %d", c.maxStartups),
		fmt.Sprintf("MaxSessions %d", c.maxSessions),
		"MaxAuthTries 10",
		"LogLevel " + c.logLevel,
	}
	if len(c.acceptEnv) > 0 {
		lines = append(lines, "AcceptEnv "+strings.Join(c.acceptEnv, " "))
	}
	return strings.Join(lines, "\n") + "\n"
}
