package conformance

import (
	"strings"
	"sync"
)

// secret is a value that must never show up in a plugin's log or errors.
type secret struct {
	label string
	// needles are the value and, for PEM keys, each line of its base64
	// body, so a partial or re-wrapped leak is caught too.
	needles []string
}

func newSecret(label string, value []byte) secret {
	s := secret{label: label}
	v := strings.TrimSpace(string(value))
	if v == "" {
		return s
	}
	s.needles = append(s.needles, v)
	for _, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			s.needles = append(s.needles, line)
		}
	}
	return s
}

// secrets collects the secrets handed to a plugin during a run.
type secrets struct {
	mu   sync.Mutex
	list []secret
}

func (s *secrets) add(label string, value []byte) {
	sec := newSecret(label, value)
	if len(sec.needles) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, sec)
}

// find returns the labels of the secrets text contains.
func (s *secrets) find(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for _, sec := range s.list {
		for _, n := range sec.needles {
			if strings.Contains(text, n) {
				found = append(found, sec.label)
				break
			}
		}
	}
	return found
}

// redact replaces every known secret in text.
func (s *secrets) redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sec := range s.list {
		for _, n := range sec.needles {
			text = strings.ReplaceAll(text, n, "[REDACTED "+sec.label+"]")
		}
	}
	return text
}
