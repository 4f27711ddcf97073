package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpDryRunPrintsPlan(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	err := os.WriteFile(file, []byte(`
name: drydemo
services:
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD", "pg_isready"]
  web:
    image: nginx:1.27
    depends_on:
      db:
        condition: service_healthy
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	saved := global
	t.Cleanup(func() { global = saved })
	global = globalOptions{files: []string{file}, root: t.TempDir(), parallel: -1}
	var out, errOut bytes.Buffer
	if err := runUp(context.Background(), &out, &errOut, upOptions{dryRun: true}, nil, false); err != nil {
		t.Fatalf("up --dry-run: %v\n%s", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"[] -> #1 network:drydemo_default CreateNetwork (missing)",
		"service:db:1 WaitContainer (until healthy)",
		"service:web:1 StartContainer (created)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q:\n%s", want, got)
		}
	}
	out.Reset()
	if err := runUp(context.Background(), &out, &errOut, upOptions{dryRun: true}, []string{"db"}, false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "service:web") {
		t.Errorf("up db planned web too:\n%s", out.String())
	}
	if err := runUp(context.Background(), &out, &errOut, upOptions{}, nil, false); err == nil || !strings.Contains(err.Error(), "--dry-run") {
		t.Errorf("up without a driver: %v", err)
	}
}
