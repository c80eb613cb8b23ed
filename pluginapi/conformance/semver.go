package conformance

import "regexp"

// semverPattern is the regular expression published with Semantic
// Versioning 2.0.0 (semver.org), without a leading "v".
var semverPattern = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// isSemver reports whether v is a semantic version such as "1.2.0" or
// "0.3.0-rc.1+build.5".
func isSemver(v string) bool { return semverPattern.MatchString(v) }
