package pluginhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ParseLock parses and validates the content of plugins.lock.
//
// It is strict: unknown fields, duplicate fields, null values, values of the
// wrong type, missing required fields and data after the object are
// refused, and every field is validated. Errors name the line and the field,
// e.g. `line 7: plugins[0].sha256 "abc": must be the file's sha256 as 64
// lower-case hex digits`.
func ParseLock(data []byte) (*Lock, error) {
	if len(data) > maxLockSize {
		return nil, fmt.Errorf("is %d bytes; a lock file is at most %d", len(data), maxLockSize)
	}
	p := &lockParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	return p.lock()
}

// lockParser walks the JSON token by token so it can see duplicate keys and
// report the line of each field.
type lockParser struct {
	data []byte
	dec  *json.Decoder
}

// lineAt returns the 1-based line of the first significant byte at or
// after off (the decoder's offset sits before separators and blanks).
func (p *lockParser) lineAt(off int64) int {
	i := int(off)
	for i < len(p.data) && bytes.IndexByte([]byte(" \t\r\n,:"), p.data[i]) >= 0 {
		i++
	}
	return p.lineOf(int64(i))
}

// lineOf returns the 1-based line of the byte at off.
func (p *lockParser) lineOf(off int64) int {
	i := min(max(int(off), 0), len(p.data))
	return 1 + bytes.Count(p.data[:i], []byte("\n"))
}

func (p *lockParser) errorf(off int64, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.lineAt(off), fmt.Sprintf(format, args...))
}

// fieldErrorAt places a field error on a line.
func (p *lockParser) fieldErrorAt(off int64, fe fieldError) error {
	return fmt.Errorf("line %d: %w", p.lineAt(off), fe)
}

// syntaxError places a JSON syntax error on its line. The streaming
// decoder's offsets are not always relative to the start of the input, so
// the whole input is checked again to find the first error's offset.
func (p *lockParser) syntaxError(se *json.SyntaxError) error {
	var abs *json.SyntaxError
	if err := json.Unmarshal(p.data, new(any)); errors.As(err, &abs) {
		se = abs
	}
	return fmt.Errorf("line %d: invalid JSON: %v", p.lineOf(se.Offset-1), se)
}

// token reads the next token; a syntax error names its line.
func (p *lockParser) token(what string) (json.Token, int64, error) {
	off := p.dec.InputOffset()
	tok, err := p.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, off, p.syntaxError(se)
		case errors.Is(err, io.EOF):
			return nil, off, p.errorf(off, "unexpected end of file, expected %s", what)
		default:
			return nil, off, p.errorf(off, "invalid JSON: %v", err)
		}
	}
	return tok, off, nil
}

// object reads a JSON object, calling field for each key with the offset of
// the key; it refuses duplicate keys.
func (p *lockParser) object(path string, field func(key string, off int64) error) (int64, error) {
	tok, start, err := p.token("an object")
	if err != nil {
		return start, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return start, p.errorf(start, "%s: must be a JSON object, found %s", path, describe(tok))
	}
	seen := map[string]bool{}
	for p.dec.More() {
		tok, off, err := p.token("a field name")
		if err != nil {
			return start, err
		}
		key, ok := tok.(string)
		if !ok {
			return start, p.errorf(off, "%s: expected a field name, found %s", path, describe(tok))
		}
		if seen[key] {
			return start, p.errorf(off, "%s: field %q appears twice", path, key)
		}
		seen[key] = true
		if err := field(key, off); err != nil {
			return start, err
		}
	}
	if _, _, err := p.token("}"); err != nil {
		return start, err
	}
	return start, nil
}

// value decodes the next value into dst; null and wrong types are refused
// with the expected type named.
func (p *lockParser) value(path string, off int64, dst any, want string) error {
	var raw json.RawMessage
	if err := p.dec.Decode(&raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return p.syntaxError(se)
		}
		return p.errorf(off, "%s: %v", path, err)
	}
	if string(raw) == "null" {
		return p.errorf(off, "%s: must be %s, not null", path, want)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return p.errorf(off, "%s: must be %s, found %s", path, want, shorten(string(raw)))
	}
	return nil
}

func (p *lockParser) lock() (*Lock, error) {
	l := &Lock{}
	var haveAPI, havePlugins bool
	start, err := p.object("the lock", func(key string, off int64) error {
		switch key {
		case "apiVersion":
			haveAPI = true
			if err := p.value(key, off, &l.APIVersion, "an integer"); err != nil {
				return err
			}
			if l.APIVersion != LockAPIVersion {
				return p.fieldErrorAt(off, fieldError{Field: key, Value: fmt.Sprint(l.APIVersion), Rule: fmt.Sprintf("this gitlab-runner-kubevirt reads lock format %d only; re-run `gitlab-runner-kubevirt plugins lock`", LockAPIVersion)})
			}
			return nil
		case "plugins":
			havePlugins = true
			return p.plugins(l)
		default:
			return p.errorf(off, "unknown field %q (a lock has apiVersion and plugins)", key)
		}
	})
	if err != nil {
		return nil, err
	}
	if !haveAPI {
		return nil, p.errorf(start, "the lock: field \"apiVersion\" is required")
	}
	if !havePlugins {
		return nil, p.errorf(start, "the lock: field \"plugins\" is required")
	}
	// Exactly one JSON value: anything after it is refused.
	off := p.dec.InputOffset()
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, p.errorf(off, "unexpected data after the lock object")
	}
	return l, nil
}

// plugins reads the plugins array and validates each entry and the list.
func (p *lockParser) plugins(l *Lock) error {
	tok, off, err := p.token("[")
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return p.errorf(off, "plugins: must be a JSON array, found %s", describe(tok))
	}
	l.Plugins = []Entry{}
	files := map[string]int{}
	for p.dec.More() {
		i := len(l.Plugins)
		if i == maxLockEntries {
			return p.errorf(p.dec.InputOffset(), "plugins: must list at most %d plugins", maxLockEntries)
		}
		e, err := p.entry(i)
		if err != nil {
			return err
		}
		if j, dup := files[e.entry.File]; dup {
			return p.fieldErrorAt(e.fields["file"], fieldError{Field: fmt.Sprintf("plugins[%d].file", i), Value: e.entry.File, Rule: fmt.Sprintf("is already locked by plugins[%d]; list each file once", j)})
		}
		files[e.entry.File] = i
		l.Plugins = append(l.Plugins, e.entry)
	}
	if _, _, err := p.token("]"); err != nil {
		return err
	}
	return nil
}

// parsedEntry is an entry with the offset of each of its fields.
type parsedEntry struct {
	entry  Entry
	fields map[string]int64
}

// entry reads and validates plugins[i].
func (p *lockParser) entry(i int) (parsedEntry, error) {
	pe := parsedEntry{fields: map[string]int64{}}
	e := &pe.entry
	path := fmt.Sprintf("plugins[%d]", i)
	start, err := p.object(path, func(key string, off int64) error {
		pe.fields[key] = off
		f := path + "." + key
		switch key {
		case "file":
			return p.value(f, off, &e.File, "a string")
		case "sha256":
			return p.value(f, off, &e.SHA256, "a string")
		case "name":
			return p.value(f, off, &e.Name, "a string")
		case "kind":
			return p.value(f, off, &e.Kind, "a string")
		case "version":
			return p.value(f, off, &e.Version, "a string")
		case "apiVersions":
			return p.value(f, off, &e.APIVersions, "an array of integers")
		case "osFamily":
			return p.value(f, off, &e.OSFamily, "a string")
		case "shells":
			return p.value(f, off, &e.Shells, "an array of strings")
		case "capabilities":
			return p.value(f, off, &e.Capabilities, "an array of strings")
		default:
			return p.errorf(off, "%s: unknown field %q (known: file, sha256, name, kind, version, apiVersions, osFamily, shells, capabilities)", path, key)
		}
	})
	if err != nil {
		return pe, err
	}
	for _, req := range []string{"file", "sha256", "name", "kind", "version", "apiVersions"} {
		if _, ok := pe.fields[req]; !ok {
			return pe, p.errorf(start, "%s: field %q is required", path, req)
		}
	}
	if errs := e.check(); len(errs) > 0 {
		var all []error
		for _, fe := range errs {
			off, ok := pe.fields[topField(fe.Field)]
			if !ok {
				off = start
			}
			fe.Field = path + "." + fe.Field
			all = append(all, p.fieldErrorAt(off, fe))
		}
		return pe, errors.Join(all...)
	}
	return pe, nil
}

// topField returns "shells" for "shells[2]".
func topField(f string) string {
	if i := bytes.IndexByte([]byte(f), '['); i >= 0 {
		return f[:i]
	}
	return f
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string " + shorten(fmt.Sprintf("%q", t))
	case float64:
		return fmt.Sprintf("the number %v", t)
	case bool:
		return fmt.Sprintf("%v", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// shorten cuts a value shown in an error to maxShownValueLn bytes.
func shorten(s string) string {
	if len(s) > maxShownValueLn {
		return s[:maxShownValueLn] + "..."
	}
	return s
}
