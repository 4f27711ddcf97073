package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type ent struct {
	name, link, body string
	typ              byte
	mode             int64
}

func mkTar(t testing.TB, ents ...ent) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Typeflag == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return b.Bytes()
}

// sandbox lays out <tmp>/outside/{victim,vdir/} next to <tmp>/x/y/target and
// returns a function listing everything outside the target.
func sandbox(t testing.TB) (target string, outside func() string) {
	tmp := scratchDir(t)
	target = filepath.Join(tmp, "x", "y", "target")
	for _, d := range []string{target, filepath.Join(tmp, "outside", "vdir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(tmp, "outside", "victim"), []byte("keep"), 0o644)
	os.WriteFile(filepath.Join(tmp, "x", "victim"), []byte("keep"), 0o644)
	return target, func() string {
		var lines []string
		filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if p == target {
				return filepath.SkipDir
			}
			var st unix.Stat_t
			unix.Lstat(p, &st)
			body, _ := os.ReadFile(p)
			lines = append(lines, p+" "+fs.FileMode(st.Mode).String()+" "+string(rune('0'+st.Uid%10))+" "+string(body))
			return nil
		})
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
}

// scratchDir prefers tmpfs: the fuzzer creates and deletes thousands of
// trees, and ext4's inode allocator slows to a crawl under that churn.
func scratchDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "berth-archive-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func TestHostileArchives(t *testing.T) {
	sym, lnk, dir := byte(tar.TypeSymlink), byte(tar.TypeLink), byte(tar.TypeDir)
	cases := []struct {
		name    string
		ents    []ent
		wantErr bool
		inside  string // a path that must exist inside the target afterwards
		mayErr  bool   // a dangling in-root symlink: refusing is as safe as writing inside
	}{
		{"dotdot", []ent{{name: "../../../outside/victim", body: "pwned"}}, true, "", false},
		{"dotdot-mid", []ent{{name: "a/../../../../outside/evil", body: "pwned"}}, true, "", false},
		{"absolute", []ent{{name: "/outside/victim", body: "pwned"}}, false, "outside/victim", false},
		{"symlink-then-file", []ent{{name: "l", typ: sym, link: "../../../outside"}, {name: "l/victim", body: "pwned"}}, false, "outside/victim", true},
		{"abs-symlink-then-file", []ent{{name: "l", typ: sym, link: "/"}, {name: "l/evil", body: "pwned"}}, false, "evil", false},
		{"symlink-chain", []ent{{name: "a", typ: sym, link: "b/c"}, {name: "b", typ: sym, link: "../.."}, {name: "c", typ: sym, link: "../../../outside"}, {name: "a/victim", body: "pwned"}}, false, "", true},
		{"hardlink-out", []ent{{name: "h", typ: lnk, link: "../../../outside/victim"}}, true, "", false},
		{"hardlink-via-symlink-dir", []ent{{name: "l", typ: sym, link: "../../../outside"}, {name: "h", typ: lnk, link: "l/victim"}}, true, "", false},
		{"hardlink-to-symlink-then-write", []ent{{name: "s", typ: sym, link: "../../../outside/victim"}, {name: "h", typ: lnk, link: "s"}, {name: "h", body: "pwned"}}, false, "h", false},
		{"chmod-through-symlink", []ent{{name: "d", typ: dir, mode: 0o777}, {name: "d", typ: sym, link: "../../../outside/vdir"}}, false, "", false},
		{"file-over-symlink", []ent{{name: "s", typ: sym, link: "../../../outside/victim"}, {name: "s", body: "pwned", mode: 0o777}}, false, "s", false},
		{"device", []ent{{name: "dev/mem", typ: tar.TypeChar}}, false, "", false},
		{"whiteout-dotdot", []ent{{name: "../.wh.victim"}}, true, "", false},
		{"whiteout-dotdot-name", []ent{{name: "a/.wh.."}}, true, "", false},
		{"whiteout-through-symlink", []ent{{name: "l", typ: sym, link: "../../../outside"}, {name: "l/.wh.victim"}}, false, "", true},
		{"opaque-through-symlink", []ent{{name: "l", typ: sym, link: "../../../outside"}, {name: "l/.wh..wh..opq"}}, false, "", true},
	}
	for _, c := range cases {
		for _, m := range []Mode{Overlay, Flatten} {
			t.Run(c.name, func(t *testing.T) {
				target, outside := sandbox(t)
				before := outside()
				_, err := Extract(context.Background(), target, bytes.NewReader(mkTar(t, c.ents...)), Options{Mode: m})
				if (err != nil) != c.wantErr && !c.mayErr {
					t.Fatalf("err = %v, want error %v", err, c.wantErr)
				}
				if c.wantErr && !errors.Is(err, ErrUnsafe) && !errors.Is(err, unix.ENOENT) {
					t.Errorf("err = %v, want ErrUnsafe", err)
				}
				if after := outside(); after != before {
					t.Fatalf("outside changed:\n%s\n---\n%s", before, after)
				}
				if c.inside != "" && err == nil {
					if _, err := os.Lstat(filepath.Join(target, c.inside)); err != nil {
						t.Errorf("want %s inside: %v", c.inside, err)
					}
				}
			})
		}
	}
}

func TestLimits(t *testing.T) {
	target, _ := sandbox(t)
	big := mkTar(t, ent{name: "a", body: strings.Repeat("x", 2000)}, ent{name: "b", body: strings.Repeat("x", 2000)})
	_, err := Extract(context.Background(), target, bytes.NewReader(big), Options{Limits: Limits{MaxBytes: 3000}})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("bytes: err = %v", err)
	}
	many := mkTar(t, ent{name: "a"}, ent{name: "b"}, ent{name: "c"})
	_, err = Extract(context.Background(), t.TempDir(), bytes.NewReader(many), Options{Limits: Limits{MaxEntries: 2}})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("entries: err = %v", err)
	}
}

// scriptTar builds a well-formed tar from a compact script, one entry per
// line: a type letter (f file, d dir, l symlink, h hardlink, p fifo, c
// char device), a name, and for links a target. Random bytes rarely make a
// tar header with a valid checksum; scripts let the fuzzer explore names,
// links and their order instead.
func scriptTar(script string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, line := range strings.Split(script, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || len(fields[0]) != 1 {
			continue
		}
		h := &tar.Header{Name: fields[1], Mode: 0o755, Format: tar.FormatPAX}
		if len(fields) > 2 {
			h.Linkname = fields[2]
		}
		switch fields[0] {
		case "f":
			h.Typeflag, h.Size = tar.TypeReg, int64(len(h.Linkname))
		case "d":
			h.Typeflag = tar.TypeDir
		case "l":
			h.Typeflag = tar.TypeSymlink
		case "h":
			h.Typeflag = tar.TypeLink
		case "p":
			h.Typeflag = tar.TypeFifo
		case "c":
			h.Typeflag = tar.TypeChar
		default:
			continue
		}
		if tw.WriteHeader(h) != nil {
			continue
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Linkname))
		}
	}
	tw.Close()
	return b.Bytes()
}

func FuzzExtract(f *testing.F) {
	f.Add("l l ../../../outside\nf l/victim pwned", false)
	f.Add("l s /outside/victim\nh h s\nf h pwned\nf a/.wh.b", true)
	f.Add("d d\nf d/.wh..wh..opq\nf d/f y\nl d ../../../outside/vdir\nd d", false)
	f.Add("l a b/c\nl b ../..\nl c ../../../outside\nf a/victim x\nf ../.wh.victim", true)
	f.Add("p fifo\nc dev\nh x ../../../outside/victim\nf /abs/x y", false)
	f.Fuzz(func(t *testing.T, script string, flatten bool) {
		if len(script) > 4096 {
			return
		}
		target, outside := sandbox(t)
		before := outside()
		m := Overlay
		if flatten {
			m = Flatten
		}
		Extract(context.Background(), target, bytes.NewReader(scriptTar(script)), Options{Mode: m, Limits: Limits{MaxEntries: 200, MaxBytes: 1 << 20}})
		if after := outside(); after != before {
			t.Fatalf("outside changed:\n%s\n---\n%s", before, after)
		}
	})
}

func TestReplaceAndWhiteouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := mkTar(t, ent{name: "a/b/c", body: "1"}, ent{name: "a/b", body: "file now"},
		ent{name: "d/", typ: tar.TypeDir, mode: 0o750}, ent{name: "d/.wh..wh..opq"}, ent{name: "e/.wh.gone"})
	if _, err := Extract(ctx, dir, bytes.NewReader(data), Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a/b")); string(b) != "file now" {
		t.Errorf("a/b = %q", b)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "e/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("e/gone is not an overlay whiteout: %v %o", err, st.Mode)
	}
	if os.Geteuid() == 0 {
		v := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dir, "d"), OpaqueXattr, v)
		if err != nil || string(v[:n]) != "y" {
			t.Errorf("d not opaque: %v", err)
		}
		// And back: the directory written as a layer has OCI whiteouts.
		var out bytes.Buffer
		if err := WriteDir(ctx, &out, dir, WriteOptions{Whiteouts: true}); err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		tr := tar.NewReader(&out)
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			names[h.Name] = true
		}
		for _, want := range []string{"d/", "d/.wh..wh..opq", "e/.wh.gone", "a/b"} {
			if !names[want] {
				t.Errorf("round trip lacks %s: %v", want, names)
			}
		}
	}
	// Flatten applies the whiteouts instead.
	flat := t.TempDir()
	os.MkdirAll(filepath.Join(flat, "d/old"), 0o755)
	os.MkdirAll(filepath.Join(flat, "e"), 0o755)
	os.WriteFile(filepath.Join(flat, "e/gone"), nil, 0o644)
	data = mkTar(t, ent{name: "d/", typ: tar.TypeDir}, ent{name: "d/new", body: "n"}, ent{name: "d/.wh..wh..opq"}, ent{name: "e/.wh.gone"})
	if _, err := Extract(ctx, flat, bytes.NewReader(data), Options{Mode: Flatten}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(flat, "d/old")); err == nil {
		t.Error("opaque whiteout kept d/old")
	}
	if _, err := os.Lstat(filepath.Join(flat, "d/new")); err != nil {
		t.Error("opaque whiteout removed this layer's d/new")
	}
	if _, err := os.Lstat(filepath.Join(flat, "e/gone")); err == nil {
		t.Error("whiteout kept e/gone")
	}
}

func TestDeepPaths(t *testing.T) {
	deep := strings.Repeat("d/", 200) + "f"
	target := scratchDir(t)
	if _, err := Extract(context.Background(), target, bytes.NewReader(mkTar(t, ent{name: deep, body: "x"})), Options{}); err != nil {
		t.Fatalf("200 levels: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, deep)); string(b) != "x" {
		t.Errorf("deep file = %q", b)
	}
	tooDeep := strings.Repeat("d/", maxDepth+1) + "f"
	_, err := Extract(context.Background(), scratchDir(t), bytes.NewReader(mkTar(t, ent{name: tooDeep, body: "x"})), Options{})
	if !errors.Is(err, ErrLimit) {
		t.Errorf("%d levels: err = %v, want ErrLimit", maxDepth+1, err)
	}
}
