package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
)

// composeEvent has the shape of docker compose events --json.
type composeEvent struct {
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"`
	Action     string            `json:"action"`
	ID         string            `json:"id"`
	Service    string            `json:"service"`
	Attributes map[string]string `json:"attributes"`
}

func init() {
	register(func() *cobra.Command {
		var asJSON bool
		var since string
		cmd := &cobra.Command{
			Use:   "events [OPTIONS] [SERVICE...]",
			Short: "Receive real time events from containers",
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := signalContext(cmd)
				defer cancel()
				from, err := parseTime(since, time.Now())
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				t, err := openProject(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				return t.d.Events(ctx, native.EventsOptions{Project: t.name, Since: from, Follow: true}, func(e native.Event) error {
					if len(args) > 0 && !slices.Contains(args, e.Service) {
						return nil
					}
					return printContainerEvent(w, e, asJSON)
				})
			},
		}
		cmd.Flags().BoolVar(&asJSON, "json", false, "Output events as a stream of json objects")
		cmd.Flags().StringVar(&since, "since", "", "Show events since a timestamp or relative time (42m)")
		return cmd
	})
}

func printContainerEvent(w io.Writer, e native.Event, asJSON bool) error {
	attrs := map[string]string{"name": e.Name, "image": e.Image}
	if e.ExitCode != nil {
		attrs["exitCode"] = strconv.Itoa(*e.ExitCode)
	}
	if e.Detail != "" {
		attrs["reason"] = e.Detail
	}
	if asJSON {
		return json.NewEncoder(w).Encode(composeEvent{Time: e.Time, Type: "container", Action: e.Action, ID: e.ID, Service: e.Service, Attributes: attrs})
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	line := fmt.Sprintf("%s container %s %s (", e.Time.Format(time.RFC3339Nano), e.Action, e.ID)
	for i, k := range keys {
		if i > 0 {
			line += ", "
		}
		line += k + "=" + attrs[k]
	}
	_, err := fmt.Fprintln(w, line+")")
	return err
}
