package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// printRows writes rows the way docker's list commands do: --format json
// is one JSON object a line, table is a header and a tab-aligned line per
// row. Commands with more modes (-q, templates) handle those first.
func printRows[T any](w io.Writer, format string, rows []T, header string, line func(T) string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case "table", "":
	default:
		return fmt.Errorf("--format: unknown format %q (want table or json)", format)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, line(r))
	}
	return tw.Flush()
}
