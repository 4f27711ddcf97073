// Package sops decrypts (and, for tests and tooling, encrypts) files in the
// SOPS format (https://getsops.io) whose data key is wrapped for age
// recipients: YAML, JSON, dotenv and binary documents, MAC verified.
//
// It implements the file format itself on top of filippo.io/age instead of
// importing github.com/getsops/sops/v3: the library's tree, cipher and
// store packages all import its key service, hence every cloud KMS client
// (AWS, GCP, Azure, Vault, gRPC), which made every berth process start
// slower and the idle `berth sync` controller exceed its memory budget
// (docs/gitops.md has the figures).
package sops

import (
	"bytes"
	cryptoaes "crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Format is how a file is laid out, chosen by its name like sops does.
type Format int

const (
	Binary Format = iota // anything else: {"data": ENC[...], "sops": {...}}
	YAML                 // .yaml, .yml
	JSON                 // .json
	Dotenv               // .env
)

func (f Format) String() string {
	return [...]string{"binary", "yaml", "json", "dotenv"}[f]
}

// FormatOf is sops' choice of store for a path: by extension, binary
// when unknown.
func FormatOf(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return YAML
	case ".json":
		return JSON
	case ".env":
		return Dotenv
	}
	return Binary
}

// ErrMAC is returned (wrapped) when the file's content does not match its
// message authentication code: it was changed after it was encrypted.
var ErrMAC = errors.New("MAC mismatch: the file was modified after it was encrypted")

// NoKeyError is returned when none of the identities can unwrap the data
// key.
type NoKeyError struct {
	Recipients []string // age recipients the file is encrypted for
	Other      []string // key types berth cannot use (kms, pgp...)
	Sources    []string // where identities were looked for
}

func (e *NoKeyError) Error() string {
	var b strings.Builder
	if len(e.Recipients) == 0 {
		b.WriteString("no age recipient in the sops metadata")
		if len(e.Other) > 0 {
			fmt.Fprintf(&b, " (encrypted for %s only: berth decrypts age keys)", strings.Join(e.Other, ", "))
		}
		return b.String()
	}
	fmt.Fprintf(&b, "no age identity matches the recipients %s", strings.Join(e.Recipients, ", "))
	if len(e.Sources) == 0 {
		b.WriteString(" (no identity found: set SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, --age-key-file or ~/.config/sops/age/keys.txt)")
	} else {
		fmt.Fprintf(&b, " (identities from %s)", strings.Join(e.Sources, ", "))
	}
	return b.String()
}

// metadata is the `sops` section, as far as decryption needs it.
type metadata struct {
	Age                     []ageKey
	KeyGroups               [][]ageKey
	Other                   []string
	LastModified            string
	MAC                     string
	UnencryptedSuffix       string
	EncryptedSuffix         string
	UnencryptedRegex        string
	EncryptedRegex          string
	UnencryptedCommentRegex string
	EncryptedCommentRegex   string
	MACOnlyEncrypted        bool
	Version                 string
	ShamirThreshold         int
}

type ageKey struct {
	Recipient string
	Enc       string
}

// fromMap reads the metadata from its generic form (a YAML or JSON
// mapping, or the unflattened dotenv keys).
func metadataFromMap(m map[string]any) (*metadata, error) {
	md := &metadata{
		LastModified:            str(m["lastmodified"]),
		MAC:                     str(m["mac"]),
		UnencryptedSuffix:       str(m["unencrypted_suffix"]),
		EncryptedSuffix:         str(m["encrypted_suffix"]),
		UnencryptedRegex:        str(m["unencrypted_regex"]),
		EncryptedRegex:          str(m["encrypted_regex"]),
		UnencryptedCommentRegex: str(m["unencrypted_comment_regex"]),
		EncryptedCommentRegex:   str(m["encrypted_comment_regex"]),
		Version:                 str(m["version"]),
	}
	if md.MAC == "" || md.LastModified == "" {
		return nil, errors.New("sops metadata without mac or lastmodified")
	}
	switch v := m["mac_only_encrypted"].(type) {
	case bool:
		md.MACOnlyEncrypted = v
	case string:
		md.MACOnlyEncrypted, _ = strconv.ParseBool(v)
	}
	md.ShamirThreshold, _ = strconv.Atoi(str(m["shamir_threshold"]))
	md.Age = ageKeys(m["age"])
	for _, k := range []string{"kms", "gcp_kms", "azure_kv", "hc_vault", "pgp", "hckms"} {
		if l, ok := m[k].([]any); ok && len(l) > 0 {
			md.Other = append(md.Other, k)
		}
	}
	if groups, ok := m["key_groups"].([]any); ok {
		for _, g := range groups {
			gm, _ := g.(map[string]any)
			md.KeyGroups = append(md.KeyGroups, ageKeys(gm["age"]))
			for _, k := range []string{"kms", "gcp_kms", "azure_kv", "hc_vault", "pgp", "hckms"} {
				if l, ok := gm[k].([]any); ok && len(l) > 0 {
					md.Other = append(md.Other, k)
				}
			}
		}
	}
	return md, nil
}

func ageKeys(v any) []ageKey {
	l, _ := v.([]any)
	var out []ageKey
	for _, e := range l {
		m, _ := e.(map[string]any)
		if m == nil {
			continue
		}
		out = append(out, ageKey{Recipient: str(m["recipient"]), Enc: str(m["enc"])})
	}
	return out
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case time.Time:
		return v.Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}

// dataKey unwraps the 32-byte data key with the first identity that
// matches one of the file's age recipients.
func (md *metadata) dataKey(keys *Keys) ([]byte, error) {
	stanzas := md.Age
	switch {
	case len(md.KeyGroups) > 1:
		return nil, fmt.Errorf("the data key is split between %d key groups (Shamir): not supported", len(md.KeyGroups))
	case len(md.KeyGroups) == 1:
		stanzas = append(stanzas, md.KeyGroups[0]...)
	}
	nke := &NoKeyError{Other: md.Other}
	if keys != nil {
		nke.Sources = keys.Sources
	}
	var last error
	for _, k := range stanzas {
		nke.Recipients = append(nke.Recipients, k.Recipient)
		if keys == nil || len(keys.Identities) == 0 {
			continue
		}
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(k.Enc)), keys.Identities...)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if !errors.As(err, &nm) {
				last = err
			}
			continue
		}
		key, err := io.ReadAll(r)
		if err != nil {
			last = err
			continue
		}
		if len(key) != 32 {
			last = fmt.Errorf("data key of %d bytes", len(key))
			continue
		}
		return key, nil
	}
	if last != nil {
		return nil, fmt.Errorf("unwrapping the data key: %w", last)
	}
	return nil, nke
}

// encRe is compiled on first use, not at init: every berth process would
// pay for it.
var encRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)
})

// decryptValue opens one ENC[...] value; additional data binds it to its
// place in the tree. An empty string is an empty value (sops does not
// encrypt those). It returns the plaintext and its sops type.
func decryptValue(s string, key []byte, aad string) ([]byte, string, error) {
	if s == "" {
		return nil, "str", nil
	}
	m := encRe().FindStringSubmatch(s)
	if m == nil {
		return nil, "", errors.New("value is not in sops' ENC[AES256_GCM,...] format")
	}
	var parts [3][]byte
	for i := range parts {
		b, err := base64.StdEncoding.DecodeString(m[i+1])
		if err != nil {
			return nil, "", fmt.Errorf("base64: %w", err)
		}
		parts[i] = b
	}
	block, err := cryptoaes.NewCipher(key)
	if err != nil {
		return nil, "", err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(parts[1]))
	if err != nil {
		return nil, "", err
	}
	plain, err := gcm.Open(nil, parts[1], append(parts[0], parts[2]...), []byte(aad))
	if err != nil {
		return nil, "", fmt.Errorf("%w (AES-GCM authentication failed)", ErrMAC)
	}
	return plain, m[4], nil
}

// encryptValue is the inverse of decryptValue, with a random 32-byte IV
// as sops uses.
func encryptValue(plain []byte, typ string, key []byte, aad string) (string, error) {
	if len(plain) == 0 && typ == "str" {
		return "", nil
	}
	block, err := cryptoaes.NewCipher(key)
	if err != nil {
		return "", err
	}
	iv := make([]byte, 32)
	if _, err := rand.Read(iv); err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return "", err
	}
	out := gcm.Seal(nil, iv, plain, []byte(aad))
	n := len(out) - gcm.Overhead()
	return fmt.Sprintf("ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]",
		base64.StdEncoding.EncodeToString(out[:n]), base64.StdEncoding.EncodeToString(iv),
		base64.StdEncoding.EncodeToString(out[n:]), typ), nil
}

// macOnlyEncryptedInit starts the MAC of files with mac_only_encrypted,
// so that it never equals the MAC of the same values without it.
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// leaf is one value of the tree as a format presents it to the walk.
type leaf struct {
	path []string
	// value is the parsed scalar: string, int, float64, bool, time.Time
	// or nil (nulls are neither encrypted nor in the MAC).
	value any
	// set replaces the value with a plaintext of the given sops type
	// (decryption) or with an ENC[...] string (encryption).
	set func(plain []byte, typ string)
}

// rules decide which values are encrypted, like sops' shouldBeEncrypted.
type rules struct {
	md             *metadata
	unencRe, encRe *regexp.Regexp
}

func newRules(md *metadata) (*rules, error) {
	r := &rules{md: md}
	var err error
	if md.UnencryptedRegex != "" {
		if r.unencRe, err = regexp.Compile(md.UnencryptedRegex); err != nil {
			return nil, err
		}
	}
	if md.EncryptedRegex != "" {
		if r.encRe, err = regexp.Compile(md.EncryptedRegex); err != nil {
			return nil, err
		}
	}
	if md.UnencryptedCommentRegex != "" || md.EncryptedCommentRegex != "" {
		return nil, errors.New("files encrypted with --unencrypted-comment-regex or --encrypted-comment-regex are not supported")
	}
	return r, nil
}

func (r *rules) encrypted(path []string) bool {
	md := r.md
	enc := true
	if md.UnencryptedSuffix != "" {
		for _, p := range path {
			if strings.HasSuffix(p, md.UnencryptedSuffix) {
				enc = false
				break
			}
		}
	}
	if md.EncryptedSuffix != "" {
		enc = false
		for _, p := range path {
			if strings.HasSuffix(p, md.EncryptedSuffix) {
				enc = true
				break
			}
		}
	}
	if r.unencRe != nil {
		for _, p := range path {
			if r.unencRe.MatchString(p) {
				enc = false
				break
			}
		}
	}
	if r.encRe != nil {
		enc = false
		for _, p := range path {
			if r.encRe.MatchString(p) {
				enc = true
				break
			}
		}
	}
	return enc
}

// toBytes is what the MAC hashes for a value (sops.ToBytes).
func toBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case int64:
		return []byte(strconv.FormatInt(v, 10)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case time.Time:
		return v.MarshalText()
	}
	return nil, fmt.Errorf("cannot hash a value of type %T", v)
}

// typed turns a decrypted plaintext into the value sops would hash.
func typed(plain []byte, typ string) (any, error) {
	s := string(plain)
	switch typ {
	case "str", "bytes":
		return s, nil
	case "int":
		return strconv.Atoi(s)
	case "float":
		return strconv.ParseFloat(s, 64)
	case "bool":
		return strconv.ParseBool(s)
	case "time":
		var t time.Time
		err := t.UnmarshalText(plain)
		return t, err
	case "comment":
		return nil, nil
	}
	return nil, fmt.Errorf("unknown value type %q", typ)
}

// typeOf is the sops type and plaintext of a value to encrypt.
func typeOf(v any) ([]byte, string, error) {
	switch v.(type) {
	case string, []byte:
		b, _ := toBytes(v)
		return b, "str", nil
	case int, int64:
		b, _ := toBytes(v)
		return b, "int", nil
	case float64:
		b, _ := toBytes(v)
		return b, "float", nil
	case bool:
		b, _ := toBytes(v)
		return b, "bool", nil
	case time.Time:
		b, err := toBytes(v)
		return b, "time", err
	}
	return nil, "", fmt.Errorf("cannot encrypt a value of type %T", v)
}

// document is one file parsed by its format.
type document interface {
	metadata() (*metadata, error)
	// walk calls fn for every value in tree order (the order of the MAC).
	walk(fn func(*leaf) error) error
	// plaintext emits the document without its sops section.
	plaintext() ([]byte, error)
	// encrypted emits the document with the given sops section.
	encrypted(md map[string]any) ([]byte, error)
}

func parse(b []byte, f Format) (document, error) {
	switch f {
	case YAML:
		return parseYAML(b)
	case JSON:
		return parseJSON(b, false)
	case Dotenv:
		return parseDotenv(b)
	}
	return parseJSON(b, true)
}

// IsEncrypted reports whether b, read as format f, is a SOPS document: it
// has a sops section with a MAC. It is cheap for files that are not.
func IsEncrypted(b []byte, f Format) bool {
	if !bytes.Contains(b, []byte("sops")) || !bytes.Contains(b, []byte("mac")) {
		return false
	}
	d, err := parse(b, f)
	if err != nil {
		return false
	}
	md, err := d.metadata()
	return err == nil && md != nil
}

// Decrypt returns the plaintext of the SOPS document b in format f, after
// checking its MAC. The result has the same format without the sops
// section (binary: the original bytes).
func Decrypt(b []byte, f Format, keys *Keys) ([]byte, error) {
	d, err := parse(b, f)
	if err != nil {
		return nil, err
	}
	md, err := d.metadata()
	if err != nil {
		return nil, err
	}
	if md == nil {
		return nil, errors.New("not a sops document: no sops metadata")
	}
	r, err := newRules(md)
	if err != nil {
		return nil, err
	}
	key, err := md.dataKey(keys)
	if err != nil {
		return nil, err
	}
	h := sha512.New()
	if md.MACOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	err = d.walk(func(l *leaf) error {
		if l.value == nil {
			return nil
		}
		enc := r.encrypted(l.path)
		v := l.value
		if enc {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s: expected an encrypted value, found a %T", strings.Join(l.path, "."), v)
			}
			plain, typ, err := decryptValue(s, key, strings.Join(l.path, ":")+":")
			if err != nil {
				return fmt.Errorf("%s: %w", strings.Join(l.path, "."), err)
			}
			if v, err = typed(plain, typ); err != nil {
				return fmt.Errorf("%s: %w", strings.Join(l.path, "."), err)
			}
			l.set(plain, typ)
		}
		if v == nil || (md.MACOnlyEncrypted && !enc) {
			return nil
		}
		bs, err := toBytes(v)
		if err != nil {
			return err
		}
		h.Write(bs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := checkMAC(md, key, h); err != nil {
		return nil, err
	}
	return d.plaintext()
}

func lastModifiedAAD(s string) string {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Format(time.RFC3339)
	}
	return s
}

func checkMAC(md *metadata, key []byte, h hash.Hash) error {
	want, _, err := decryptValue(md.MAC, key, lastModifiedAAD(md.LastModified))
	if err != nil {
		return fmt.Errorf("%w (the MAC itself does not decrypt)", ErrMAC)
	}
	got := fmt.Sprintf("%X", h.Sum(nil))
	if subtle.ConstantTimeCompare(want, []byte(got)) != 1 {
		return ErrMAC
	}
	return nil
}

// Encrypt produces a SOPS document from the plaintext b in format f, its
// data key wrapped for each recipient. Every value is encrypted (no
// suffix or regex rules). Files it writes decrypt with sops itself.
func Encrypt(b []byte, f Format, recipients ...*age.X25519Recipient) ([]byte, error) {
	var d document
	var err error
	if f == Binary {
		d = &jsonDoc{binary: true, root: &jnode{kind: jObject, keys: []string{"data"}, kids: []*jnode{{kind: jScalar, value: string(b)}}}}
	} else if d, err = parse(b, f); err != nil {
		return nil, err
	}
	if md, err := d.metadata(); err == nil && md != nil {
		return nil, errors.New("already a sops document")
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	r, _ := newRules(&metadata{UnencryptedSuffix: "_unencrypted"})
	h := sha512.New()
	err = d.walk(func(l *leaf) error {
		if l.value == nil {
			return nil
		}
		plain, typ, err := typeOf(l.value)
		if err != nil {
			return err
		}
		h.Write(plain)
		if !r.encrypted(l.path) {
			return nil
		}
		enc, err := encryptValue(plain, typ, key, strings.Join(l.path, ":")+":")
		if err != nil {
			return err
		}
		l.set([]byte(enc), "str")
		return nil
	})
	if err != nil {
		return nil, err
	}
	var ages []any
	for _, r := range recipients {
		var buf bytes.Buffer
		aw := armor.NewWriter(&buf)
		w, err := age.Encrypt(aw, r)
		if err != nil {
			return nil, err
		}
		w.Write(key)
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
		ages = append(ages, map[string]any{"recipient": r.String(), "enc": buf.String()})
	}
	now := time.Now().UTC().Format(time.RFC3339)
	mac, err := encryptValue([]byte(fmt.Sprintf("%X", h.Sum(nil))), "str", key, now)
	if err != nil {
		return nil, err
	}
	return d.encrypted(map[string]any{
		"age": ages, "lastmodified": now, "mac": mac,
		"unencrypted_suffix": "_unencrypted", "version": "3.13.3",
	})
}
