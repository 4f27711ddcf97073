package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/runtime"
)

type logsOptions struct {
	follow     bool
	tail       string
	since      string
	until      string
	timestamps bool
	noPrefix   bool
	noColor    bool
}

func init() {
	register(func() *cobra.Command {
		var o logsOptions
		cmd := &cobra.Command{
			Use:   "logs [OPTIONS] [SERVICE...]",
			Short: "View output from containers",
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := signalContext(cmd)
				defer cancel()
				t, err := openProject(ctx)
				if err != nil {
					return err
				}
				cs, err := t.containers(ctx, args, false)
				if err != nil {
					return err
				}
				return streamLogs(ctx, cmd.OutOrStdout(), t.d, cs, o)
			},
		}
		f := cmd.Flags()
		f.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
		f.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
		f.StringVar(&o.since, "since", "", "Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m)")
		f.StringVar(&o.until, "until", "", "Show logs before a timestamp or relative time")
		f.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
		f.BoolVar(&o.noPrefix, "no-log-prefix", false, "Do not print the container name prefix")
		f.BoolVar(&o.noColor, "no-color", false, "Produce monochrome output")
		shadowFileFlag(cmd)
		return cmd
	})
}

// parseTime reads docker's --since/--until: RFC 3339, a Unix time, or a
// duration before now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(0, int64(f*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339, Unix seconds or a duration like 42m", s)
}

var serviceColors = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

// streamLogs prints the logs of several containers, each line prefixed
// with the container's name as compose does, interleaved as they come.
func streamLogs(ctx context.Context, w io.Writer, d *native.Driver, cs []native.ContainerInfo, o logsOptions) error {
	now := time.Now()
	since, err := parseTime(o.since, now)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	until, err := parseTime(o.until, now)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	tail := 0
	if o.tail != "all" && o.tail != "" {
		if tail, err = strconv.Atoi(o.tail); err != nil || tail < 0 {
			return fmt.Errorf("--tail: %q is not a number of lines", o.tail)
		}
		if tail == 0 {
			tail = -1 // docker's -n 0: nothing from the past
		}
	}
	width := 0
	for _, c := range cs {
		width = max(width, len(c.Name))
	}
	color := !o.noColor && isTerminal(w)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for i, c := range cs {
		prefix := ""
		if !o.noPrefix {
			prefix = fmt.Sprintf("%-*s | ", width, c.Name)
			if color {
				prefix = "\x1b[" + serviceColors[i%len(serviceColors)] + "m" + prefix + "\x1b[0m"
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo := runtime.LogOptions{Follow: o.follow, Since: since, Tail: max(tail, 0)}
			skip := tail < 0
			errs <- d.Logs(ctx, c.ID, lo, func(e runtime.LogEntry) error {
				if skip && !o.follow {
					return nil
				}
				if skip && e.Time.Before(now) {
					return nil
				}
				if !until.IsZero() && e.Time.After(until) {
					return nil
				}
				line := strings.TrimSuffix(e.Log, "\n")
				if o.timestamps {
					line = e.Time.Format(time.RFC3339Nano) + " " + line
				}
				mu.Lock()
				defer mu.Unlock()
				_, err := fmt.Fprintln(w, prefix+line)
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}
