package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const runCompose = `
name: clir
services:
  db:
    image: localhost/busybox:cli
    pull_policy: never
    init: true
    command: ["sleep", "3600"]
  app:
    image: localhost/busybox:cli
    pull_policy: never
    command: ["echo", "default command"]
    environment:
      FROM_FILE: file
    ports:
      - "127.0.0.1:18999:8080"
    volumes:
      - data:/data
    depends_on: [db]
volumes:
  data:
`

// TestRunCommand runs berth run through the binary: one-off containers
// with their exit status, stdio, flags, dependencies and removal.
func TestRunCommand(t *testing.T) {
	m := newCLIMachine(t, runCompose, map[string]string{"hostdir/hello.txt": "from the host\n"})

	// --no-deps: db stays down; the project's volume and network are made
	// for the one-off all the same.
	out, errOut, code := m.berth("", "run", "--rm", "--no-deps", "app", "sh", "-c", "echo out; echo err >&2; exit 4")
	if code != 4 || out != "out\n" || !strings.Contains(errOut, "err\n") {
		t.Fatalf("run --rm exit 4: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if ps := m.must("ps", "-a", "-q"); ps != "" {
		t.Errorf("run --no-deps started services or left the one-off: %q", ps)
	}
	if recs := m.records(); len(recs) != 0 {
		t.Errorf("run --rm left %d containers", len(recs))
	}

	// Without --no-deps the dependency comes up first. The image's command
	// is replaced, -e overlays the file's environment, -v binds a host
	// directory relative to the project, -w and -u apply.
	out, errOut, code = m.berth("", "run", "--rm", "-e", "FROM_FILE=flag", "-v", "./hostdir:/h:ro", "-w", "/h", "-u", "nobody",
		"app", "sh", "-c", `echo "$FROM_FILE $(cat hello.txt) $(pwd) $(id -u)"`)
	if code != 0 || out != "flag from the host /h 65534\n" {
		t.Errorf("run -e -v -w -u: code %d, out %q\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "Container clir-db-1  Started") {
		t.Errorf("run did not report starting db:\n%s", errOut)
	}
	if ps := m.must("ps", "--services"); ps != "db\n" {
		t.Errorf("after run, running services are %q, want db", ps)
	}
	out, _, code = m.berth("", "run", "--rm", "app")
	if code != 0 || out != "default command\n" {
		t.Errorf("run without a command: code %d, out %q", code, out)
	}
	out, _, code = m.berth("", "run", "--rm", "--entrypoint", "echo entry", "app")
	if code != 0 || out != "entry\n" {
		t.Errorf("run --entrypoint: code %d, out %q", code, out)
	}

	// -d prints the one-off's name, compose's pattern; the container is
	// labelled as a one-off and does not publish the service's ports.
	out = strings.TrimSpace(m.must("run", "-d", "app", "sleep", "60"))
	if !regexp.MustCompile(`^clir-app-run-[0-9a-f]{12}$`).MatchString(out) {
		t.Errorf("run -d printed %q, want clir-app-run-<hex>", out)
	}
	var oneOff struct {
		Spec struct {
			Labels map[string]string
			Ports  []any
			OneOff bool
		} `json:"spec"`
	}
	for _, r := range m.records() {
		if strings.Contains(r, `"name":"`+out+`"`) {
			if err := json.Unmarshal([]byte(r), &oneOff); err != nil {
				t.Fatal(err)
			}
		}
	}
	if l := oneOff.Spec.Labels; l["com.docker.compose.oneoff"] != "True" || l["com.docker.compose.service"] != "app" ||
		l["com.docker.compose.project"] != "clir" || !oneOff.Spec.OneOff || len(oneOff.Spec.Ports) != 0 {
		t.Errorf("one-off record: %+v", oneOff.Spec)
	}
	// The one-off is not the service: the service's name does not
	// resolve to it (compose's run without --use-aliases), its own does.
	if got, _, _ := m.berth("", "exec", "db", "nslookup", "app"); strings.Contains(got, "Name:") {
		t.Errorf("the service name resolves to a one-off:\n%s", got)
	}
	if got, _, code := m.berth("", "exec", "db", "nslookup", out); code != 0 || !strings.Contains(got, "Name:\t"+out) {
		t.Errorf("the one-off's name does not resolve (exit %d):\n%s", code, got)
	}
	// --name, -p publishes on the host namespace's loopback.
	m.must("run", "-d", "--name", "clir-web", "-p", "127.0.0.1:18081:8080", "app", "httpd", "-f", "-p", "8080", "-h", "/")
	eventually(t, 10*time.Second, "published port of run -p", func() error {
		got, err := m.Host("timeout", "5", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:18081/etc/passwd")
		if err != nil || !strings.Contains(got, "root:") {
			return fmt.Errorf("%v %s", err, got)
		}
		return nil
	})
	// Without --rm the exited one-off stays until down removes it. The
	// global -p before run is the project; run's own -p publishes.
	_, errOut, code = m.berth("", "-p", "clir", "run", "--no-deps", "-p", "127.0.0.1:18082:80", "app", "true")
	if code != 0 {
		t.Errorf("-p clir run -p PORT: code %d %s", code, errOut)
	}
	if n := len(m.records()); n != 4 {
		t.Errorf("%d containers, want db and three one-offs", n)
	}
	// ps lists one-offs as compose's does.
	if ps := m.must("ps", "-a", "--format", "json"); strings.Count(ps, `"Service":"app"`) != 3 {
		t.Errorf("ps -a does not list the three one-offs:\n%s", ps)
	}
	m.must("down", "-t", "0")
	if recs := m.records(); len(recs) != 0 {
		t.Errorf("down left %d containers", len(recs))
	}
	if _, err := os.Stat(filepath.Join(m.root, "volumes", "clir_data")); err != nil {
		t.Errorf("down without -v removed the volume: %v", err)
	}
	_, errOut, code = m.berth("", "run", "nosuch")
	if code != 1 || !strings.Contains(errOut, "no such service: nosuch") {
		t.Errorf("run of a missing service: code %d, %s", code, errOut)
	}
}
