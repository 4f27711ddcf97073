package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/state"
)

func init() {
	register(func() *cobra.Command {
		var all, quiet bool
		var format string
		cmd := &cobra.Command{
			Use:   "ls [OPTIONS]",
			Short: "List running compose projects",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				d, err := nativeDriver(cmd.Context())
				if err != nil {
					return err
				}
				cs, err := d.Containers(cmd.Context(), "")
				if err != nil {
					return err
				}
				return printProjects(cmd.OutOrStdout(), projectsOf(cs, all), quiet, format)
			},
		}
		f := cmd.Flags()
		f.BoolVarP(&all, "all", "a", false, "Show all stopped projects too")
		f.BoolVarP(&quiet, "quiet", "q", false, "Only display project names")
		f.StringVar(&format, "format", "table", "Format: table or json")
		return cmd
	})
}

// projectSummary has the field names of docker compose ls --format json.
type projectSummary struct {
	Name        string
	Status      string
	ConfigFiles string
}

// projectsOf groups containers by project; a project is listed when one of
// its containers runs, or always with all.
func projectsOf(cs []native.ContainerInfo, all bool) []projectSummary {
	type acc struct {
		counts map[string]int
		files  string
	}
	byName := map[string]*acc{}
	for _, c := range cs {
		a := byName[c.Project]
		if a == nil {
			a = &acc{counts: map[string]int{}}
			byName[c.Project] = a
		}
		a.counts[c.Status]++
		if f := c.Labels[state.LabelConfigFiles]; f != "" {
			a.files = f
		}
	}
	var out []projectSummary
	for name, a := range byName {
		if !all && a.counts[state.StatusRunning] == 0 {
			continue
		}
		var parts []string
		for _, st := range []string{state.StatusRunning, state.StatusRestarting, state.StatusPaused, state.StatusExited, state.StatusCreated, state.StatusDead} {
			if n := a.counts[st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s(%d)", st, n))
			}
		}
		out = append(out, projectSummary{Name: name, Status: strings.Join(parts, ", "), ConfigFiles: a.files})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func printProjects(w io.Writer, ps []projectSummary, quiet bool, format string) error {
	switch {
	case quiet:
		for _, p := range ps {
			fmt.Fprintln(w, p.Name)
		}
		return nil
	case format == "json":
		if ps == nil {
			ps = []projectSummary{}
		}
		return json.NewEncoder(w).Encode(ps)
	case format != "table":
		return fmt.Errorf("--format: unknown format %q (want table or json)", format)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tCONFIG FILES")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Status, p.ConfigFiles)
	}
	return tw.Flush()
}
