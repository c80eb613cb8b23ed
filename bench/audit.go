package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// AuditPolicy is a kube-apiserver audit policy that logs every request at
// Metadata level once it is complete (or, for watches, started): enough
// to count requests per user without logging any object content.
const AuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

// AuditFlags returns the kube-apiserver flags that write the audit log to
// logPath with the policy in policyPath, synchronously (blocking mode),
// so a request is in the log before its response is sent.
func AuditFlags(policyPath, logPath string) []string {
	return []string{
		"--audit-policy-file=" + policyPath,
		"--audit-log-path=" + logPath,
		"--audit-log-mode=blocking",
		"--audit-log-format=json",
		"--audit-log-maxsize=0",
	}
}

// AuditCount is the number of API requests one user made, in total and by
// "verb resource".
type AuditCount struct {
	Total int
	ByKey map[string]int
}

// Keys returns the "verb resource" keys in a stable order.
func (c AuditCount) Keys() []string {
	keys := make([]string, 0, len(c.ByKey))
	for k := range c.ByKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Sub returns c minus an earlier count of the same log.
func (c AuditCount) Sub(before AuditCount) AuditCount {
	out := AuditCount{Total: c.Total - before.Total, ByKey: map[string]int{}}
	for k, v := range c.ByKey {
		if d := v - before.ByKey[k]; d != 0 {
			out.ByKey[k] = d
		}
	}
	return out
}

type auditEvent struct {
	AuditID string `json:"auditID"`
	Verb    string `json:"verb"`
	User    struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
}

// CountRequests counts the distinct requests (audit IDs) that user made
// in the JSON audit log at path.
func CountRequests(path, user string) (AuditCount, error) {
	if user == "" {
		return AuditCount{}, fmt.Errorf("count requests in %s: user is empty (name the identity to count)", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return AuditCount{}, fmt.Errorf("count requests: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	c := AuditCount{ByKey: map[string]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return AuditCount{}, fmt.Errorf("audit log %s line %d: %w", path, line, err)
		}
		if ev.User.Username != user || seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		res := "-"
		if ev.ObjectRef != nil {
			res = ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				res += "/" + ev.ObjectRef.Subresource
			}
		}
		c.Total++
		c.ByKey[ev.Verb+" "+res]++
	}
	if err := sc.Err(); err != nil {
		return AuditCount{}, fmt.Errorf("read audit log %s: %w", path, err)
	}
	return c, nil
}
