package sops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Keys are the age identities decryption may use and where they came from
// (for error messages: never the keys themselves).
type Keys struct {
	Identities []age.Identity
	Sources    []string
}

// LoadKeys gathers age identities the way sops does: SOPS_AGE_KEY (keys
// separated by newlines or commas), the file SOPS_AGE_KEY_FILE names, and
// $XDG_CONFIG_HOME/sops/age/keys.txt (~/.config/sops/age/keys.txt), plus
// extraFile (berth sync --age-key-file) first when set. environ nil means
// the process environment. A file named explicitly must be readable; the
// default one may be absent. Finding no identity is not an error here:
// decrypting then fails naming the recipients.
func LoadKeys(environ []string, extraFile string) (*Keys, error) {
	env := map[string]string{}
	if environ == nil {
		environ = os.Environ()
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	k := &Keys{}
	addFile := func(path, source string, required bool) error {
		b, err := os.ReadFile(path)
		if err != nil {
			if !required && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("age key file: %w", err)
		}
		ids, err := age.ParseIdentities(strings.NewReader(string(b)))
		if err != nil {
			return fmt.Errorf("age key file %s: %w", path, err)
		}
		k.Identities = append(k.Identities, ids...)
		k.Sources = append(k.Sources, source)
		return nil
	}
	if extraFile != "" {
		if err := addFile(extraFile, extraFile, true); err != nil {
			return nil, err
		}
	}
	if v := env["SOPS_AGE_KEY"]; v != "" {
		var lines []string
		for _, l := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ',' }) {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		ids, err := age.ParseIdentities(strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			return nil, fmt.Errorf("SOPS_AGE_KEY: %w", err)
		}
		k.Identities = append(k.Identities, ids...)
		k.Sources = append(k.Sources, "SOPS_AGE_KEY")
	}
	if v := env["SOPS_AGE_KEY_FILE"]; v != "" {
		if err := addFile(v, "SOPS_AGE_KEY_FILE="+v, true); err != nil {
			return nil, err
		}
	}
	dir := env["XDG_CONFIG_HOME"]
	if dir == "" && env["HOME"] != "" {
		dir = filepath.Join(env["HOME"], ".config")
	}
	if dir != "" {
		p := filepath.Join(dir, "sops", "age", "keys.txt")
		if err := addFile(p, p, false); err != nil {
			return nil, err
		}
	}
	return k, nil
}
