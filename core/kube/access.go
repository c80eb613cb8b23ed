package kube

import (
	"encoding/json"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Access is what run reads back from the job's Secret: how to reach the
// guest and how to run scripts on it.
type Access struct {
	Username   string
	PrivateKey []byte
	Password   string
	HostKeys   []string
	Recipe     *pluginv1.RunRecipe
	Transport  string
	Port       int
	Options    map[string]string
}

// String describes the access without secrets.
func (a Access) String() string {
	return fmt.Sprintf("%s@:%d via %s (host key %s)", a.Username, a.Port, a.Transport, a.HostKeys)
}

// GoString keeps %#v from printing secrets.
func (a Access) GoString() string { return "kube.Access{" + a.String() + "}" }

// Target returns the transport target for the guest at host.
func (a *Access) Target(host string) *pluginv1.Target {
	return &pluginv1.Target{
		Host:       host,
		Port:       uint32(a.Port),
		Username:   a.Username,
		PrivateKey: a.PrivateKey,
		Password:   a.Password,
		HostKeys:   a.HostKeys,
		Options:    a.Options,
	}
}

// ParseAccess decodes a job Secret written by prepare. Errors name the
// Secret and the key, never the content.
func ParseAccess(s *corev1.Secret) (*Access, error) {
	need := func(key string) ([]byte, error) {
		v, ok := s.Data[key]
		if !ok || len(v) == 0 {
			return nil, fmt.Errorf("secret %s/%s: key %q is missing or empty (was it written by this version of prepare?)", s.Namespace, s.Name, key)
		}
		return v, nil
	}
	a := &Access{}
	for _, f := range []struct {
		key string
		dst *string
	}{{KeyUsername, &a.Username}, {KeyTransport, &a.Transport}} {
		v, err := need(f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = string(v)
	}
	hostKey, err := need(KeyHostPublicKey)
	if err != nil {
		return nil, err
	}
	a.HostKeys = []string{string(hostKey)}
	a.PrivateKey = s.Data[KeySSHPrivateKey]
	a.Password = string(s.Data[KeyPassword])
	if len(a.PrivateKey) == 0 && a.Password == "" {
		return nil, fmt.Errorf("secret %s/%s: neither %q nor %q is set", s.Namespace, s.Name, KeySSHPrivateKey, KeyPassword)
	}
	port, err := need(KeyTransportPort)
	if err != nil {
		return nil, err
	}
	if a.Port, err = strconv.Atoi(string(port)); err != nil || a.Port < 1 || a.Port > 65535 {
		return nil, fmt.Errorf("secret %s/%s: key %q is %q, not a port number", s.Namespace, s.Name, KeyTransportPort, port)
	}
	recipe, err := need(KeyRunRecipe)
	if err != nil {
		return nil, err
	}
	a.Recipe = &pluginv1.RunRecipe{}
	if err := protojson.Unmarshal(recipe, a.Recipe); err != nil {
		return nil, fmt.Errorf("secret %s/%s: decode %q: %w", s.Namespace, s.Name, KeyRunRecipe, err)
	}
	if a.Recipe.GetCommand() == "" || a.Recipe.GetTempDir() == "" {
		return nil, fmt.Errorf("secret %s/%s: %q has no command or temp_dir", s.Namespace, s.Name, KeyRunRecipe)
	}
	if opts := s.Data[KeyTransportOptions]; len(opts) > 0 {
		// The content may be secret: report only that it is malformed.
		if err := json.Unmarshal(opts, &a.Options); err != nil {
			return nil, fmt.Errorf("secret %s/%s: key %q is not a JSON object of strings", s.Namespace, s.Name, KeyTransportOptions)
		}
	}
	return a, nil
}
