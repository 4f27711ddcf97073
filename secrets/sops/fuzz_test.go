package sops

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecrypt: a file from a repository is untrusted input. Whatever its
// bytes, Decrypt returns (no panic), and it only succeeds on a document
// IsEncrypted recognises; the fixtures themselves always decrypt.
func FuzzDecrypt(f *testing.F) {
	for _, n := range []string{"secrets.enc.yaml", "config.enc.json", "app.enc.env", "token.enc.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(FormatOf(n)))
	}
	f.Add([]byte("sops_mac=x\nsops_lastmodified=y\nsops_age__list_0__map_enc=z\nA=B\n"), uint8(Dotenv))
	f.Add([]byte(`{"sops":{"mac":"m","lastmodified":"l","age":[{"enc":"e"}]},"a":[1,2.5,true,null]}`), uint8(JSON))
	keys, err := LoadKeys([]string{}, filepath.Join("testdata", "keys.txt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, format uint8) {
		fm := Format(format % 4)
		_, err := Decrypt(b, fm, keys)
		if err == nil && !IsEncrypted(b, fm) {
			t.Fatalf("decrypted a document IsEncrypted does not recognise: %q", b)
		}
	})
}
