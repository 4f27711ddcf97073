package compose

import (
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

func TestBerthExtension(t *testing.T) {
	cases := []struct {
		ext  types.Extensions
		want bool
	}{
		{nil, true},
		{types.Extensions{"x-berth": map[string]any{"restart-on-unhealthy": false}}, false},
		{types.Extensions{"x-berth": map[string]any{"restart-on-unhealthy": true}}, true},
		{types.Extensions{"x-berth": map[string]any{"restart-on-unhealthy": "no"}}, true}, // not a boolean: default
		{types.Extensions{"x-other": map[string]any{"restart-on-unhealthy": false}}, true},
	}
	for _, c := range cases {
		if got := berthExtension(types.ServiceConfig{Extensions: c.ext}, "restart-on-unhealthy", true); got != c.want {
			t.Errorf("%v: got %v want %v", c.ext, got, c.want)
		}
	}
}
