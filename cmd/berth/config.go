package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/state"
)

type configOptions struct {
	format        string
	quiet         bool
	services      bool
	volumes       bool
	networks      bool
	profiles      bool
	images        bool
	hash          string
	noInterpolate bool
	output        string
}

func init() {
	register(func() *cobra.Command {
		var o configOptions
		cmd := &cobra.Command{
			Use:     "config [OPTIONS] [SERVICE...]",
			Aliases: []string{"convert"},
			Short:   "Parse, resolve and render the compose file in canonical format",
			RunE: func(cmd *cobra.Command, args []string) error {
				return runConfig(cmd.Context(), cmd.OutOrStdout(), o, args)
			},
		}
		f := cmd.Flags()
		f.StringVar(&o.format, "format", "yaml", "Format the output: yaml or json")
		f.BoolVarP(&o.quiet, "quiet", "q", false, "Only validate the configuration, print nothing")
		f.BoolVar(&o.services, "services", false, "Print the service names, one per line")
		f.BoolVar(&o.volumes, "volumes", false, "Print the volume names, one per line")
		f.BoolVar(&o.networks, "networks", false, "Print the network names, one per line")
		f.BoolVar(&o.profiles, "profiles", false, "Print the profile names, one per line")
		f.BoolVar(&o.images, "images", false, "Print the image names, one per line")
		f.StringVar(&o.hash, "hash", "", `Print the config hash of the services ("*" for all, or a comma-separated list)`)
		f.BoolVar(&o.noInterpolate, "no-interpolate", false, "Do not interpolate environment variables")
		f.StringVarP(&o.output, "output", "o", "", "Save to FILE instead of stdout")
		return cmd
	})
}

func runConfig(ctx context.Context, stdout io.Writer, o configOptions, services []string) error {
	if o.format != "yaml" && o.format != "json" {
		return fmt.Errorf("--format: unsupported format %q (want yaml or json)", o.format)
	}
	opts := composeOptions()
	opts.CacheDir = ""
	opts.NoInterpolate = o.noInterpolate
	p, err := compose.Load(ctx, opts)
	if err != nil {
		return err
	}
	warnUnimplemented(p.Unimplemented)
	if len(services) > 0 {
		sel, err := p.WithSelectedServices(services)
		if err != nil {
			return err
		}
		p.Project = sel
	}
	if o.quiet {
		_, err := p.Desired()
		return err
	}
	var out bytes.Buffer
	if err := renderConfig(&out, p, o); err != nil {
		return err
	}
	if o.output != "" {
		return os.WriteFile(o.output, out.Bytes(), 0o644)
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

func renderConfig(w *bytes.Buffer, p *compose.Project, o configOptions) error {
	switch {
	case o.services:
		lines(w, p.ServiceNames())
	case o.volumes:
		lines(w, p.VolumeNames())
	case o.networks:
		lines(w, p.NetworkNames())
	case o.profiles:
		lines(w, allProfiles(p))
	case o.images:
		var imgs []string
		for _, name := range p.ServiceNames() {
			imgs = append(imgs, compose.ImageName(p.Name, p.Services[name]))
		}
		lines(w, imgs)
	case o.hash != "":
		d, err := p.Desired()
		if err != nil {
			return err
		}
		return printHashes(w, d, o.hash)
	default:
		var b []byte
		var err error
		if o.format == "json" {
			b, err = p.MarshalJSON()
		} else {
			b, err = p.MarshalYAML()
		}
		if err != nil {
			return err
		}
		w.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			w.WriteByte('\n')
		}
	}
	return nil
}

func printHashes(w io.Writer, d *state.Desired, which string) error {
	names := d.ServiceNames()
	if which != "*" {
		names = strings.Split(which, ",")
	}
	for _, n := range names {
		s, ok := d.Services[n]
		if !ok {
			return fmt.Errorf("no such service: %s", n)
		}
		fmt.Fprintf(w, "%s %s\n", n, s.ConfigHash)
	}
	return nil
}

func allProfiles(p *compose.Project) []string {
	var out []string
	for _, s := range p.AllServices() {
		out = append(out, s.Profiles...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func lines(w io.Writer, l []string) {
	for _, s := range l {
		fmt.Fprintln(w, s)
	}
}
