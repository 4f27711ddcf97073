package sops

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"go.yaml.in/yaml/v4"
)

// The *.enc.* files in testdata were produced by the sops library itself
// (github.com/getsops/sops/v3 v3.13.3: its stores, aes cipher and age key
// source, as `sops encrypt` does) from testdata/plain, for the throwaway
// identity in testdata/keys.txt; other.enc.env for the one in
// testdata/other-keys.txt.

func fixtureKeys(t *testing.T, file string) *Keys {
	t.Helper()
	k, err := LoadKeys([]string{}, filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameContent compares two documents of format f by meaning: YAML and
// JSON values, dotenv assignments as compose reads them, binary bytes.
func sameContent(t *testing.T, f Format, got, want []byte) {
	t.Helper()
	var g, w any
	switch f {
	case YAML:
		if err := yaml.Unmarshal(got, &g); err != nil {
			t.Fatalf("decrypted YAML does not parse: %v\n%s", err, got)
		}
		yaml.Unmarshal(want, &w)
	case JSON:
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("decrypted JSON does not parse: %v\n%s", err, got)
		}
		json.Unmarshal(want, &w)
	case Dotenv:
		var err error
		if g, err = dotenv.UnmarshalBytesWithLookup(got, noLookup); err != nil {
			t.Fatalf("decrypted dotenv does not parse: %v\n%s", err, got)
		}
		w, _ = dotenv.UnmarshalBytesWithLookup(want, noLookup)
	default:
		g, w = string(got), string(want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("decrypted %s differs:\ngot  %#v\nwant %#v\n%s", f, g, w, got)
	}
}

func noLookup(string) (string, bool) { return "", true }

func TestDecryptSopsFixtures(t *testing.T) {
	keys := fixtureKeys(t, "keys.txt")
	for _, c := range []struct{ enc, plain string }{
		{"secrets.enc.yaml", "secrets.yaml"},
		{"config.enc.json", "config.json"},
		{"app.enc.env", "app.env"},
		{"token.enc.txt", "token.txt"},
	} {
		t.Run(c.enc, func(t *testing.T) {
			f := FormatOf(c.enc)
			b := read(t, filepath.Join("testdata", c.enc))
			if !IsEncrypted(b, f) {
				t.Fatal("not recognised as a sops document")
			}
			plain := read(t, filepath.Join("testdata", "plain", c.plain))
			if IsEncrypted(plain, f) {
				t.Fatal("the plaintext is recognised as a sops document")
			}
			got, err := Decrypt(b, f, keys)
			if err != nil {
				t.Fatal(err)
			}
			sameContent(t, f, got, plain)
			if bytes.Contains(got, []byte("ENC[")) || bytes.Contains(got, []byte("sops")) {
				t.Fatalf("ciphertext or metadata left in the plaintext:\n%s", got)
			}
		})
	}
}

func TestDecryptWrongKey(t *testing.T) {
	b := read(t, "testdata/other.enc.env")
	_, err := Decrypt(b, Dotenv, fixtureKeys(t, "keys.txt"))
	var nk *NoKeyError
	if !errors.As(err, &nk) || len(nk.Recipients) != 1 || !strings.HasPrefix(nk.Recipients[0], "age1") {
		t.Fatalf("want a NoKeyError naming the recipient, got %v", err)
	}
	if !strings.Contains(err.Error(), "testdata/keys.txt") {
		t.Fatalf("the error does not say where identities were looked for: %v", err)
	}
	// and with no identity at all
	_, err = Decrypt(read(t, "testdata/app.enc.env"), Dotenv, &Keys{})
	if !errors.As(err, &nk) || !strings.Contains(err.Error(), "SOPS_AGE_KEY") {
		t.Fatalf("want a NoKeyError telling where keys go, got %v", err)
	}
	// the right key among several works
	k := fixtureKeys(t, "other-keys.txt")
	k.Identities = append(k.Identities, fixtureKeys(t, "keys.txt").Identities...)
	if _, err := Decrypt(read(t, "testdata/app.enc.env"), Dotenv, k); err != nil {
		t.Fatal(err)
	}
}

func TestDecryptTampered(t *testing.T) {
	keys := fixtureKeys(t, "keys.txt")
	env := string(read(t, "testdata/app.enc.env"))
	lines := strings.Split(env, "\n")
	val := func(key string) string {
		for _, l := range lines {
			if k, v, ok := strings.Cut(l, "="); ok && k == key {
				return v
			}
		}
		t.Fatalf("no %s", key)
		return ""
	}
	yml := string(read(t, "testdata/secrets.enc.yaml"))
	for name, c := range map[string]struct {
		doc string
		f   Format
	}{
		// a value moved to another key: its additional data no longer matches
		"value swapped": {strings.Replace(env, "DB_PASSWORD="+val("DB_PASSWORD"), "DB_PASSWORD="+val("API_TOKEN"), 1), Dotenv},
		// a value removed: every value authenticates, the MAC does not
		"value removed": {strings.Replace(env, "API_TOKEN="+val("API_TOKEN")+"\n", "", 1), Dotenv},
		// a value added in clear
		"value added": {"INJECTED=1\n" + env, Dotenv},
		// an unencrypted value (_unencrypted suffix) changed
		"clear value changed": {strings.Replace(yml, "visible in the file", "changed in the file", 1), YAML},
		// the MAC replaced by another value's ciphertext
		"mac replaced": {strings.Replace(env, "sops_mac="+val("sops_mac"), "sops_mac="+val("DB_PASSWORD"), 1), Dotenv},
		// one bit of a ciphertext flipped
		"ciphertext flipped": {strings.Replace(env, val("DB_PASSWORD"), flipData(t, val("DB_PASSWORD")), 1), Dotenv},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decrypt([]byte(c.doc), c.f, keys); err == nil {
				t.Fatalf("a tampered file decrypted:\n%s", c.doc)
			} else if name == "value added" {
				if !strings.Contains(err.Error(), "INJECTED") {
					t.Fatalf("the error does not name the clear value: %v", err)
				}
			} else if !errors.Is(err, ErrMAC) {
				t.Fatalf("want a MAC error, got %v", err)
			}
		})
	}
}

// flipData flips one bit of an ENC[...] value's ciphertext.
func flipData(t *testing.T, v string) string {
	m := encRe().FindStringSubmatch(v)
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil || len(b) == 0 {
		t.Fatal(err)
	}
	b[0] ^= 1
	return strings.Replace(v, "data:"+m[1], "data:"+base64.StdEncoding.EncodeToString(b), 1)
}

func TestEncryptRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	keys := &Keys{Identities: []age.Identity{id}, Sources: []string{"test"}}
	for _, name := range []string{"secrets.yaml", "config.json", "app.env", "token.txt"} {
		t.Run(name, func(t *testing.T) {
			f := FormatOf(name)
			plain := read(t, filepath.Join("testdata", "plain", name))
			enc, err := Encrypt(plain, f, other.Recipient(), id.Recipient())
			if err != nil {
				t.Fatal(err)
			}
			if !IsEncrypted(enc, f) {
				t.Fatalf("own output not recognised:\n%s", enc)
			}
			for _, secret := range []string{"s3cr3t-p4ss", "tok-123", "hunter2", "raw secret"} {
				if bytes.Contains(enc, []byte(secret)) {
					t.Fatalf("%q in clear in the encrypted file:\n%s", secret, enc)
				}
			}
			got, err := Decrypt(enc, f, keys)
			if err != nil {
				t.Fatalf("%v\n%s", err, enc)
			}
			sameContent(t, f, got, plain)
		})
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	ids := make([]*age.X25519Identity, 4)
	for i := range ids {
		ids[i], _ = age.GenerateX25519Identity()
	}
	os.WriteFile(filepath.Join(dir, "flag.txt"), []byte(ids[0].String()+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "envfile.txt"), []byte("# created: now\n"+ids[1].String()+"\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "cfg", "sops", "age"), 0o700)
	os.WriteFile(filepath.Join(dir, "cfg", "sops", "age", "keys.txt"), []byte(ids[2].String()+"\n"), 0o600)
	k, err := LoadKeys([]string{
		"SOPS_AGE_KEY=" + ids[3].String() + "," + ids[3].String(),
		"SOPS_AGE_KEY_FILE=" + filepath.Join(dir, "envfile.txt"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "cfg"),
	}, filepath.Join(dir, "flag.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Identities) != 5 || len(k.Sources) != 4 {
		t.Fatalf("identities %d from %v", len(k.Identities), k.Sources)
	}
	// HOME's default path when XDG_CONFIG_HOME is unset
	os.MkdirAll(filepath.Join(dir, "home", ".config", "sops", "age"), 0o700)
	os.WriteFile(filepath.Join(dir, "home", ".config", "sops", "age", "keys.txt"), []byte(ids[2].String()+"\n"), 0o600)
	k, err = LoadKeys([]string{"HOME=" + filepath.Join(dir, "home")}, "")
	if err != nil || len(k.Identities) != 1 {
		t.Fatalf("default key file: %v %v", k, err)
	}
	// an explicit file must exist, the default one may not
	if _, err := LoadKeys([]string{}, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing --age-key-file is accepted")
	}
	if _, err := LoadKeys([]string{"SOPS_AGE_KEY_FILE=" + filepath.Join(dir, "missing")}, ""); err == nil {
		t.Fatal("a missing SOPS_AGE_KEY_FILE is accepted")
	}
	if k, err := LoadKeys([]string{"HOME=" + filepath.Join(dir, "nohome")}, ""); err != nil || len(k.Identities) != 0 {
		t.Fatalf("no key anywhere: %v %v", k, err)
	}
}

func TestFormatOf(t *testing.T) {
	for p, f := range map[string]Format{"a/b.yaml": YAML, "x.YML": YAML, "c.json": JSON, ".env": Dotenv,
		"prod.enc.env": Dotenv, "key.pem": Binary, "secret": Binary} {
		if FormatOf(p) != f {
			t.Errorf("%s: %s, want %s", p, FormatOf(p), f)
		}
	}
}
