package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:   "top [SERVICE...]",
			Short: "Display the running processes",
			RunE: func(cmd *cobra.Command, args []string) error {
				t, err := openProject(cmd.Context())
				if err != nil {
					return err
				}
				cs, err := t.containers(cmd.Context(), args, false)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				for _, c := range cs {
					if !running(c) {
						continue
					}
					procs, err := t.d.Runtime().Top(c.ID)
					if err != nil {
						return fmt.Errorf("top %s: %w", c.Name, err)
					}
					fmt.Fprintln(w, c.Name)
					tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
					fmt.Fprintln(tw, "UID\tPID\tPPID\tSTAT\tCMD")
					for _, p := range procs {
						fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", procUID(p.Pid), p.Pid, p.PPid, p.State, p.Command)
					}
					tw.Flush()
					fmt.Fprintln(w)
				}
				return nil
			},
		}
	})
}

// procUID reads the real uid of a host process ("?" once it is gone).
func procUID(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "?"
}
