package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Commit    string `json:"commit,omitempty"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

func init() {
	register(func() *cobra.Command {
		var format string
		var short bool
		cmd := &cobra.Command{
			Use:   "version",
			Short: "Show the berth version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				v := currentVersion()
				switch {
				case short:
					fmt.Fprintln(cmd.OutOrStdout(), v.Version)
				case format == "json":
					enc := json.NewEncoder(cmd.OutOrStdout())
					return enc.Encode(v)
				case format == "" || format == "pretty":
					fmt.Fprintf(cmd.OutOrStdout(), "berth version %s (%s %s/%s)\n", v.Version, v.GoVersion, v.OS, v.Arch)
				default:
					return fmt.Errorf("--format: unknown format %q (want pretty or json)", format)
				}
				return nil
			},
		}
		cmd.Flags().StringVar(&format, "format", "", "Output format: pretty or json")
		cmd.Flags().BoolVar(&short, "short", false, "Print only the version number")
		return cmd
	})
}
