package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/runtime"
)

// statsRow has the field names of docker stats --format json.
type statsRow struct {
	ID       string `json:"ID"`
	Name     string `json:"Name"`
	CPUPerc  string `json:"CPUPerc"`
	MemUsage string `json:"MemUsage"`
	MemPerc  string `json:"MemPerc"`
	NetIO    string `json:"NetIO"`
	BlockIO  string `json:"BlockIO"`
	PIDs     string `json:"PIDs"`
}

func init() {
	register(func() *cobra.Command {
		var noStream bool
		var format string
		cmd := &cobra.Command{
			Use:   "stats [OPTIONS] [SERVICE...]",
			Short: "Display a live stream of container resource usage (from the cgroups)",
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := signalContext(cmd)
				defer cancel()
				t, err := openProject(ctx)
				if err != nil {
					return err
				}
				for {
					cs, err := t.containers(ctx, args, false)
					if err != nil {
						return err
					}
					rows, err := sampleStats(ctx, t.d, cs, time.Second)
					if err != nil {
						return err
					}
					if !noStream && format != "json" && isTerminal(cmd.OutOrStdout()) {
						fmt.Fprint(cmd.OutOrStdout(), "\x1b[2J\x1b[H")
					}
					if err := printStats(cmd.OutOrStdout(), rows, format); err != nil {
						return err
					}
					if noStream || ctx.Err() != nil {
						return nil
					}
				}
			},
		}
		cmd.Flags().BoolVar(&noStream, "no-stream", false, "Print the first result and exit")
		cmd.Flags().StringVar(&format, "format", "table", "Format: table or json")
		return cmd
	})
}

// sampleStats reads every running container's cgroup twice, period apart,
// for the CPU percentage (of one CPU, as docker prints it).
func sampleStats(ctx context.Context, d *native.Driver, cs []native.ContainerInfo, period time.Duration) ([]statsRow, error) {
	first := map[string]*runtime.Stats{}
	for _, c := range cs {
		if st, err := d.Runtime().Stats(c.ID); err == nil {
			first[c.ID] = st
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(period):
	}
	var rows []statsRow
	for _, c := range cs {
		a, ok := first[c.ID]
		if !ok {
			continue
		}
		b, err := d.Runtime().Stats(c.ID)
		if err != nil {
			continue
		}
		cpu := float64(b.CPUUsageNs-a.CPUUsageNs) / float64(period.Nanoseconds()) * 100
		mem := "0.00%"
		if b.MemoryLimit > 0 && b.MemoryLimit < 1<<62 {
			mem = fmt.Sprintf("%.2f%%", float64(b.MemoryUsage)/float64(b.MemoryLimit)*100)
		}
		limit := "unlimited"
		if b.MemoryLimit > 0 && b.MemoryLimit < 1<<62 {
			limit = binarySize(b.MemoryLimit)
		}
		rx, tx := netIO(c)
		rows = append(rows, statsRow{
			ID: c.ID[:12], Name: c.Name, CPUPerc: fmt.Sprintf("%.2f%%", cpu),
			MemUsage: binarySize(b.MemoryUsage) + " / " + limit, MemPerc: mem,
			NetIO: humanSize(int64(rx)) + " / " + humanSize(int64(tx)), BlockIO: "--",
			PIDs: strconv.FormatUint(b.Pids, 10),
		})
	}
	return rows, nil
}

// netIO sums the container's interfaces, read through its init's view of
// /proc/net/dev (the container's network namespace), loopback excluded.
func netIO(c native.ContainerInfo) (rx, tx uint64) {
	if c.Pid == 0 {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx
}

// binarySize prints memory as docker stats does (MiB, GiB).
func binarySize(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

func printStats(w io.Writer, rows []statsRow, format string) error {
	return printRows(w, format, rows, "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS", func(r statsRow) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.ID, r.Name, r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs)
	})
}
