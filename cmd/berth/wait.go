package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/runtime"
)

func init() {
	register(func() *cobra.Command {
		var downProject bool
		cmd := &cobra.Command{
			Use:   "wait SERVICE [SERVICE...] [OPTIONS]",
			Short: "Block until the first service container stops; print its exit code",
			Args:  cobra.MinimumNArgs(1),
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
				if len(cs) == 0 {
					return errors.New("no containers to wait for")
				}
				type exit struct {
					name string
					code int
					err  error
				}
				done := make(chan exit, len(cs))
				for _, c := range cs {
					go func() {
						st, err := t.d.Runtime().Wait(ctx, c.ID)
						if errors.Is(err, runtime.ErrNotFound) {
							done <- exit{c.Name, c.ExitCode, nil}
							return
						}
						if err != nil {
							done <- exit{c.Name, 0, err}
							return
						}
						done <- exit{c.Name, st.ExitCode, nil}
					}()
				}
				e := <-done
				if e.err != nil {
					return e.err
				}
				fmt.Fprintln(cmd.OutOrStdout(), e.code)
				if downProject {
					return runDown(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), downOptions{timeout: 10}, false)
				}
				return nil
			},
		}
		cmd.Flags().BoolVar(&downProject, "down-project", false, "Drop the project once the first container stops")
		return cmd
	})
}
