package osutil

import (
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zone names validate the same on every host
	"unicode"
	"unicode/utf8"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Request field names as the errors spell them (the proto field names).
const (
	FieldTimezone   = "timezone"
	FieldInstanceID = "instance_id"
	FieldOptions    = "options"
)

// truncateAt is how much of an over-long value an error quotes.
const truncateAt = 64

// Truncate shortens s for an error message.
func Truncate(s string) string {
	if len(s) <= truncateAt {
		return s
	}
	cut := truncateAt
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// HasControl reports whether s holds a control character (C0, DEL, C1),
// a Unicode line or paragraph separator, or invalid UTF-8.
func HasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp)
	})
}

// timezonePattern is the shape of an IANA time zone name ("UTC",
// "Europe/Zurich", "America/Argentina/Buenos_Aires", "Etc/GMT+5").
var timezonePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$`)

// notZone reports names time.LoadLocation accepts that are not IANA zones
// a guest knows: Go's own alias for the host zone, and a file some hosts'
// zoneinfo directories carry.
func notZone(tz string) bool { return tz == "Local" || tz == "posixrules" }

// maxTimezone bounds a time zone name (the longest IANA name has 32
// characters).
const maxTimezone = 64

// Timezone checks an IANA time zone name. Empty means the image default.
// The name must be known to Go's embedded copy of the IANA database.
func Timezone(tz string) error {
	if tz == "" {
		return nil
	}
	if len(tz) > maxTimezone || !timezonePattern.MatchString(tz) {
		return pluginapi.InvalidInput(FieldTimezone, Truncate(tz), "must be an IANA time zone name like Europe/Zurich (letters, digits, _+- and up to three /-separated parts, at most %d characters)", maxTimezone)
	}
	if notZone(tz) {
		return pluginapi.InvalidInput(FieldTimezone, tz, "is not an IANA time zone name")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return pluginapi.InvalidInput(FieldTimezone, tz, "is not in the IANA time zone database")
	}
	return nil
}

// instanceIDPattern allows Kubernetes names, UUIDs and similar ids.
var instanceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$`)

// InstanceID checks the request's instance id: empty, or up to 253
// characters of letters, digits and ._:- starting with a letter or digit.
func InstanceID(id string) error {
	if id == "" || instanceIDPattern.MatchString(id) {
		return nil
	}
	return pluginapi.InvalidInput(FieldInstanceID, Truncate(id), "must match %s", instanceIDPattern)
}

// CheckOptions refuses an option whose key is not in allowed. Keys are
// checked in sorted order so the error is the same on every call.
func CheckOptions(options map[string]string, allowed []string) error {
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return pluginapi.InvalidInput(FieldOptions, Truncate(k), "is not an option of this plugin; allowed: %s", strings.Join(allowed, ", "))
		}
	}
	return nil
}

// OptionField is how an error names the option key.
func OptionField(key string) string { return FieldOptions + "." + key }

// BoolOption returns the value of a boolean option: "true" or "false",
// def when the option is absent.
func BoolOption(options map[string]string, key string, def bool) (bool, error) {
	v, ok := options[key]
	if !ok {
		return def, nil
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, pluginapi.InvalidInput(OptionField(key), Truncate(v), `must be "true" or "false"`)
}

// ListOption splits a comma-separated option into its trimmed, non-empty
// items in order, dropping repeats. An absent option is an empty list.
func ListOption(options map[string]string, key string) []string {
	var out []string
	for item := range strings.SplitSeq(options[key], ",") {
		item = strings.TrimSpace(item)
		if item != "" && !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}
