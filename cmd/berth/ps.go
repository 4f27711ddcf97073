package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/state"
)

type psOptions struct {
	all      bool
	quiet    bool
	services bool
	status   []string
	format   string
}

func init() {
	register(func() *cobra.Command {
		var o psOptions
		cmd := &cobra.Command{
			Use:   "ps [OPTIONS] [SERVICE...]",
			Short: "List the project's containers",
			RunE: func(cmd *cobra.Command, args []string) error {
				t, err := openProject(cmd.Context())
				if err != nil {
					return err
				}
				cs, err := t.containers(cmd.Context(), args, true) // one-offs too, as compose ps
				if err != nil {
					return err
				}
				return printPS(cmd.OutOrStdout(), filterPS(cs, o), o)
			},
		}
		f := cmd.Flags()
		f.BoolVarP(&o.all, "all", "a", false, "Show all containers, stopped ones included")
		f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display IDs")
		f.BoolVar(&o.services, "services", false, "Display services")
		f.StringArrayVar(&o.status, "status", nil, "Filter by status: created, restarting, running, paused, exited, dead")
		f.StringVar(&o.format, "format", "table", "Format: table or json")
		return cmd
	})
}

func filterPS(cs []native.ContainerInfo, o psOptions) []native.ContainerInfo {
	var out []native.ContainerInfo
	for _, c := range cs {
		if len(o.status) > 0 {
			if !slices.Contains(o.status, c.Status) {
				continue
			}
		} else if !o.all && c.Status != state.StatusRunning && c.Status != state.StatusRestarting && c.Status != state.StatusPaused {
			continue
		}
		out = append(out, c)
	}
	return out
}

// psEntry has the field names of docker compose ps --format json.
type psEntry struct {
	ID         string
	Name       string
	Image      string
	Command    string
	Project    string
	Service    string
	Created    int64
	State      string
	Status     string
	Health     string
	ExitCode   int
	Publishers []publisher
	Labels     string
}

type publisher struct {
	URL           string
	TargetPort    int
	PublishedPort int
	Protocol      string
}

func toPSEntry(c native.ContainerInfo) psEntry {
	e := psEntry{
		ID: c.ID, Name: c.Name, Image: c.Spec.Image, Command: quoteCommand(c), Project: c.Project,
		Service: c.Service, Created: c.Created.Unix(), State: c.Status, Status: statusText(c),
		Health: c.Health, ExitCode: c.ExitCode,
	}
	for _, p := range c.Ports {
		// A port on all addresses answers on both families (as Docker's
		// ps shows it: 0.0.0.0 and ::).
		urls := []string{p.HostIP}
		if p.HostIP == "" {
			urls = []string{"0.0.0.0", "::"}
		}
		for _, ip := range urls {
			e.Publishers = append(e.Publishers, publisher{URL: ip, TargetPort: p.ContainerPort, PublishedPort: p.HostPort, Protocol: p.Protocol})
		}
	}
	var labels []string
	for k, v := range c.Labels {
		labels = append(labels, k+"="+v)
	}
	slices.Sort(labels)
	e.Labels = strings.Join(labels, ",")
	return e
}

func printPS(w io.Writer, cs []native.ContainerInfo, o psOptions) error {
	switch {
	case o.quiet:
		for _, c := range cs {
			fmt.Fprintln(w, c.ID)
		}
		return nil
	case o.services:
		var seen []string
		for _, c := range cs {
			if !slices.Contains(seen, c.Service) {
				seen = append(seen, c.Service)
				fmt.Fprintln(w, c.Service)
			}
		}
		return nil
	}
	entries := make([]psEntry, len(cs))
	for i, c := range cs {
		entries[i] = toPSEntry(c)
	}
	return printRows(w, o.format, entries, "NAME\tIMAGE\tCOMMAND\tSERVICE\tCREATED\tSTATUS\tPORTS", func(e psEntry) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", e.Name, e.Image, truncate(e.Command, 20), e.Service,
			ago(time.Unix(e.Created, 0)), e.Status, portsText(e.Publishers))
	})
}

func quoteCommand(c native.ContainerInfo) string {
	args := append(append([]string{}, c.Spec.Entrypoint...), c.Spec.Command...)
	if c.Runtime != nil && len(c.Runtime.Args) > 0 {
		args = c.Runtime.Args // as it runs: image defaults merged
	}
	return `"` + strings.Join(args, " ") + `"`
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…\""
}

// statusText renders a status as docker does: "Up 5 seconds (healthy)",
// "Exited (1) 2 minutes ago".
func statusText(c native.ContainerInfo) string {
	switch c.Status {
	case state.StatusRunning:
		s := "Up " + duration(time.Since(c.StartedAt))
		if c.Health != "" {
			s += " (" + c.Health + ")"
		}
		return s
	case state.StatusPaused:
		return "Up " + duration(time.Since(c.StartedAt)) + " (Paused)"
	case state.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", c.ExitCode, duration(time.Since(c.FinishedAt)))
	case state.StatusExited:
		if c.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", c.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, duration(time.Since(c.FinishedAt)))
	}
	return "Created"
}

func ago(t time.Time) string { return duration(time.Since(t)) + " ago" }

// duration is docker's human duration ("Less than a second", "5 seconds",
// "About a minute", "3 hours").
func duration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case d.Minutes() < 2:
		return "About a minute"
	case d.Minutes() < 60:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d.Hours() < 2:
		return "About an hour"
	case d.Hours() < 48:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
}

func portsText(ps []publisher) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.URL, strconv.Itoa(p.PublishedPort)), p.TargetPort, p.Protocol))
	}
	return strings.Join(out, ", ")
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
