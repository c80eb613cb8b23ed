package pluginhost

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// ByName returns the locked plugin of the given kind and name. When several
// files carry that name, the highest semantic version wins and a warning
// naming the others is logged. Entries serving no API version this core
// speaks are not considered.
func (l *Lock) ByName(log hclog.Logger, kind Kind, name string) (Entry, error) {
	var found []Entry
	for _, e := range l.Plugins {
		if e.Kind == kind && e.Name == name && e.usable() {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return Entry{}, fmt.Errorf("no %s plugin named %q in %s (locked %s plugins: %s); install %s%s in the plugin directory and re-run `gitlab-runner-kubevirt plugins lock`",
			kind, name, LockFileName, kind, l.names(kind), pluginapi.BinaryPrefix, name)
	}
	return highest(log, found), nil
}

// ForShell returns the locked OS plugin that serves GitLab shell shell. If
// plugins of different names serve it, the choice is ambiguous and an error
// lists them so the admin names one; among files of one name the highest
// version wins (see [Lock.ByName]).
func (l *Lock) ForShell(log hclog.Logger, shell string) (Entry, error) {
	var found []Entry
	var names []string
	for _, e := range l.Plugins {
		if e.Serves(shell) && e.usable() {
			found = append(found, e)
			if !slices.Contains(names, e.Name) {
				names = append(names, e.Name)
			}
		}
	}
	switch {
	case len(found) == 0:
		return Entry{}, fmt.Errorf("no os plugin in %s serves shell %q (locked os plugins: %s); install one that does and re-run `gitlab-runner-kubevirt plugins lock`",
			LockFileName, shell, l.names(KindOS))
	case len(names) > 1:
		slices.Sort(names)
		return Entry{}, fmt.Errorf("shell %q is served by several os plugins (%s); choose one by name", shell, strings.Join(names, ", "))
	}
	return highest(log, found), nil
}

// highest returns the entry with the highest version (ties: the first file
// name) and warns about the others.
func highest(log hclog.Logger, found []Entry) Entry {
	slices.SortStableFunc(found, func(a, b Entry) int {
		if c := compareVersions(b.Version, a.Version); c != 0 {
			return c
		}
		return strings.Compare(a.File, b.File)
	})
	best := found[0]
	if len(found) > 1 && log != nil {
		var others []string
		for _, e := range found[1:] {
			others = append(others, fmt.Sprintf("%s %s", e.File, e.Version))
		}
		log.Warn("several locked plugins share a name; using the highest version",
			"name", best.Name, "kind", string(best.Kind), "using", fmt.Sprintf("%s %s", best.File, best.Version),
			"ignored", strings.Join(others, ", "))
	}
	return best
}

// names lists the distinct names of locked plugins of kind, or "none".
func (l *Lock) names(kind Kind) string {
	var names []string
	for _, e := range l.Plugins {
		if e.Kind == kind && !slices.Contains(names, e.Name) {
			names = append(names, e.Name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
