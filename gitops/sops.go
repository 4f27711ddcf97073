package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/secrets/sops"
	"github.com/berth-dev/berth/state"
)

// plainDir holds decrypted compose files for the duration of one load
// (0700, files 0600): compose-go reads compose files by path. Everything
// else decrypted stays in memory.
const plainDir = "plain"

// secrets decrypts the SOPS documents one revision's project reads. A file
// is a SOPS document when its content, read in the format its name gives
// (like sops: .yaml/.yml, .json, .env, anything else binary), has a sops
// section with a MAC; names do not matter.
type secrets struct {
	work    string // the working tree, for messages
	environ []string
	keyFile string
	keys    *sops.Keys
	keysErr error
	n       int               // documents decrypted
	done    map[string][]byte // path -> plaintext (nil: not a SOPS document)
}

func (c *Controller) newSecrets(work string) *secrets {
	return &secrets{work: work, environ: c.o.Environ, keyFile: c.o.AgeKeyFile}
}

// plaintext returns the decrypted content of path when it is a SOPS
// document (ok true); a file that is not, or cannot be read, is left to
// the loader. A SOPS document that does not decrypt (no matching key, MAC
// mismatch) is an error naming the file.
func (s *secrets) plaintext(path string) (plain []byte, ok bool, err error) {
	if plain, seen := s.done[path]; seen {
		return plain, plain != nil, nil
	}
	plain, ok, err = s.decrypt(path)
	if err == nil {
		if s.done == nil {
			s.done = map[string][]byte{}
		}
		s.done[path] = plain
	}
	return plain, ok, err
}

func (s *secrets) decrypt(path string) (plain []byte, ok bool, err error) {
	defer func() {
		// a repository file is untrusted input: whatever it does to the
		// parser ends as an error, not a crash of the controller
		if r := recover(); r != nil {
			plain, ok, err = nil, true, fmt.Errorf("%s: sops: internal error: %v", path, r)
		}
	}()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, nil
	}
	f := sops.FormatOf(path)
	if !sops.IsEncrypted(b, f) {
		return nil, false, nil
	}
	name := path
	if rel, err := filepath.Rel(s.work, path); err == nil && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	if s.keys == nil && s.keysErr == nil {
		s.keys, s.keysErr = sops.LoadKeys(s.environ, s.keyFile)
	}
	if s.keysErr != nil {
		return nil, true, fmt.Errorf("%s: sops: %w", name, s.keysErr)
	}
	plain, err = sops.Decrypt(b, f, s.keys)
	if err != nil {
		return nil, true, fmt.Errorf("%s: sops: %w", name, err)
	}
	s.n++
	return plain, true, nil
}

func environMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// prepareLoad decrypts, before the load, what compose-go reads itself:
// the project's env files (their values are added to the environment the
// loader sees, where the process environment still wins, as it does over
// .env) and the compose files (decrypted into plainDir and loaded from
// there with the project directory pinned to dir, so relative paths keep
// resolving against the checkout).
func (s *secrets) prepareLoad(o compose.Options, dir, stateDir string) (*prepared, error) {
	pr := &prepared{cleanup: func() {}}
	environ := o.Environ
	if environ == nil {
		environ = os.Environ()
	}
	envFiles := o.EnvFiles
	if len(envFiles) == 0 {
		envFiles = []string{".env"}
	}
	var added []string
	have := environMap(environ)
	for _, f := range envFiles {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, f)
		}
		plain, ok, err := s.plaintext(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		vals, err := dotenv.ParseWithLookup(bytes.NewReader(plain), func(k string) (string, bool) {
			v, ok := have[k]
			return v, ok
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for k, v := range vals {
			if _, set := have[k]; !set {
				have[k] = v
				added = append(added, k+"="+v)
			}
		}
	}
	if len(added) > 0 {
		o.Environ = append(append([]string(nil), environ...), added...)
	}

	files := o.Files
	var candidates []string
	if len(files) == 0 {
		files = discoverIn(dir, cli.DefaultFileNames)
		if len(files) == 0 {
			pr.opts = o
			return pr, nil // the loader looks further up and says what it found
		}
		files = append(files, discoverIn(dir, cli.DefaultOverrideFileNames)...)
		for _, n := range append(append([]string(nil), cli.DefaultFileNames...), cli.DefaultOverrideFileNames...) {
			candidates = append(candidates, filepath.Join(dir, n))
		}
	}
	pdir := filepath.Join(stateDir, plainDir)
	os.RemoveAll(pdir) // a load killed half-way left its plaintext
	var out []string
	for i, f := range files {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, f)
		}
		plain, ok, err := s.plaintext(p)
		if err != nil {
			pr.cleanup()
			return nil, err
		}
		if !ok {
			out = append(out, p)
			continue
		}
		pr.cleanup = func() { os.RemoveAll(pdir) }
		if err := os.MkdirAll(pdir, 0o700); err != nil {
			return nil, err
		}
		// same base name: compose-go picks the format and names errors by it
		q := filepath.Join(pdir, strconv.Itoa(i), filepath.Base(p))
		if err := os.MkdirAll(filepath.Dir(q), 0o700); err != nil {
			pr.cleanup()
			return nil, err
		}
		if err := os.WriteFile(q, plain, 0o600); err != nil {
			pr.cleanup()
			return nil, err
		}
		out = append(out, q)
		if pr.replaced == nil {
			pr.replaced = map[string]string{}
		}
		pr.replaced[q] = p
		pr.inputs = append(pr.inputs, p)
	}
	if len(pr.replaced) > 0 {
		o.Files = out
		if o.ProjectDirectory == "" {
			o.ProjectDirectory = dir
		}
		pr.inputs = append(pr.inputs, candidates...)
	}
	pr.opts = o
	return pr, nil
}

// named puts the repository's compose file names back into a load error
// that names their decrypted copies.
func (pr *prepared) named(err error) error {
	msg := err.Error()
	for q, p := range pr.replaced {
		msg = strings.ReplaceAll(msg, q, p)
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// prepared is how to load a revision whose files may be encrypted.
type prepared struct {
	opts     compose.Options
	replaced map[string]string // decrypted compose file -> the repository's
	inputs   []string          // repository paths the loader no longer reports
	cleanup  func()            // removes the decrypted compose files
}

func discoverIn(dir string, names []string) []string {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return []string{p}
		}
	}
	return nil
}

// serviceEnvFiles replaces, in every service's resolved environment, the
// values compose-go read from SOPS-encrypted env_files (the ENC[...]
// strings and the sops_* metadata) by the decrypted ones. A value the
// service's `environment:` or a later env_file set is left alone: only a
// value still equal to the raw one came from the encrypted file.
func (s *secrets) serviceEnvFiles(p *types.Project) error {
	for name, svc := range p.Services {
		changed := false
		for _, ef := range svc.EnvFiles {
			plain, ok, err := s.plaintext(ef.Path)
			if err != nil {
				return fmt.Errorf("service %q: env_file %w", name, err)
			}
			if !ok {
				continue
			}
			raw, err := os.ReadFile(ef.Path)
			if err != nil {
				return err
			}
			lookup := func(k string) (string, bool) {
				if v, ok := p.Environment[k]; ok {
					return v, true
				}
				if v, ok := svc.Environment[k]; ok && v != nil {
					return *v, true
				}
				return "", false
			}
			// parsed as compose-go does (its format: dotenv or raw), so
			// that the raw values compare equal to what it loaded
			rawVals, vals := map[string]string{}, map[string]string{}
			if err := dotenv.ParseWithFormat(bytes.NewReader(raw), ef.Path, rawVals, lookup, ef.Format); err != nil {
				return fmt.Errorf("service %q: env_file %s: %w", name, ef.Path, err)
			}
			if err := dotenv.ParseWithFormat(bytes.NewReader(plain), ef.Path, vals, lookup, ef.Format); err != nil {
				return fmt.Errorf("service %q: env_file %s: %w", name, ef.Path, err)
			}
			env := types.MappingWithEquals{}
			for k, v := range svc.Environment {
				env[k] = v
			}
			for k, rv := range rawVals {
				cur, set := env[k]
				if !set || cur == nil || *cur != rv {
					continue
				}
				if v, ok := vals[k]; ok {
					env[k] = &v
				} else {
					delete(env, k) // sops metadata
				}
			}
			svc.Environment, changed = env, true
		}
		if changed {
			p.Services[name] = svc
		}
	}
	return nil
}

// files puts the plaintext of SOPS-encrypted config and secret files into
// the desired state (state.File.Content: the driver writes it under the
// container's private directory as it does inline and environment
// sources) instead of their path.
func (s *secrets) files(d *state.Desired) error {
	for name, svc := range d.Services {
		for i, f := range svc.Container.Files {
			if f.Source == "" {
				continue
			}
			plain, ok, err := s.plaintext(f.Source)
			if err != nil {
				return fmt.Errorf("service %q: %s %q: %w", name, f.Kind, f.Name, err)
			}
			if ok {
				svc.Container.Files[i].Source, svc.Container.Files[i].Content = "", plain
			}
		}
	}
	return nil
}

// restoreConfigFiles names the repository's compose files, not their
// temporary plaintext, in the desired state and the containers' labels.
func restoreConfigFiles(d *state.Desired, replaced map[string]string) {
	if len(replaced) == 0 {
		return
	}
	for i, f := range d.ConfigFiles {
		if o, ok := replaced[f]; ok {
			d.ConfigFiles[i] = o
		}
	}
	joined := strings.Join(d.ConfigFiles, ",")
	for _, svc := range d.Services {
		if _, ok := svc.Container.Labels[state.LabelConfigFiles]; ok {
			svc.Container.Labels[state.LabelConfigFiles] = joined
		}
	}
}
