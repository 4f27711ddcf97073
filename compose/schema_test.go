package compose

import (
	"context"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compileSchema compiles doc as a schema, validating it against its
// draft's meta-schema unless skip.
func compileSchema(t *testing.T, doc string, skip bool) error {
	t.Helper()
	was := jsonschema.SkipSchemaValidation.Swap(skip)
	defer jsonschema.SkipSchemaValidation.Store(was)
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", v); err != nil {
		t.Fatal(err)
	}
	_, err = c.Compile("schema.json")
	return err
}

// Loads compile compose-go's schema without validating it against its
// meta-schema (warmSchema): this is where that validation happens instead.
func TestComposeSchemaValid(t *testing.T) {
	if err := compileSchema(t, schema.Schema, false); err != nil {
		t.Fatalf("compose-spec schema: %v", err)
	}
	// The check bites: a schema its meta-schema rejects fails it, and
	// compiles when the validation is skipped (what loads do).
	bad := `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "mapping"}`
	if err := compileSchema(t, bad, false); err == nil {
		t.Fatal("a schema with an unknown type passed its meta-schema")
	}
	if err := compileSchema(t, bad, true); err != nil {
		t.Fatalf("skipping validation: %v", err)
	}
}

// The schema validates a file while the loader goes on with it (patched
// compose-go): its error is still the one reported, although the steps
// after it fail on the same input in their own words, or accept it.
func TestSchemaErrorWinsOverLaterSteps(t *testing.T) {
	cases := map[string]string{
		// the conversion fails on it too ("expected ... got map")
		"mem_limit: {a: 1}": "services.web.mem_limit must be a",
		// unknown keys pass every later step
		"imagee: busybox": "services.web.imagee",
	}
	for attr, want := range cases {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    " + attr + "\n"})
		_, err := Load(context.Background(), Options{Dir: dir, Environ: []string{}})
		if err == nil || !strings.Contains(err.Error(), "validating") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want the schema's %q", attr, err, want)
		}
	}
}
