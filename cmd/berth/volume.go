package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/volume"
)

// anonymousFor is the label driver/native puts on an anonymous volume:
// what owns it (see anonymousOwner).
const anonymousFor = "org.berth.anonymous-for"

func init() {
	register(func() *cobra.Command {
		cmd := &cobra.Command{Use: "volume", Short: "Manage volumes"}
		cmd.AddCommand(volumeLsCmd(), volumeInspectCmd(), volumeRmCmd(), volumePruneCmd())
		return cmd
	})
}

// volumeEntry has the field names of docker volume ls --format json.
type volumeEntry struct {
	Availability string
	Driver       string
	Group        string
	Labels       string
	Links        string
	Mountpoint   string
	Name         string
	Scope        string
	Size         string
	Status       string
}

func toVolumeEntry(v volume.Volume, links int) volumeEntry {
	var labels []string
	for k, val := range v.Labels {
		labels = append(labels, k+"="+val)
	}
	slices.Sort(labels)
	return volumeEntry{Availability: "N/A", Driver: firstOf(v.Driver, "local"), Group: "N/A",
		Labels: strings.Join(labels, ","), Links: fmt.Sprint(links), Mountpoint: v.Mountpoint,
		Name: v.Name, Scope: "local", Size: "N/A", Status: "N/A"}
}

// volumeUsers counts, per volume, the containers that use it: by name in
// their mounts, or as the owner of an anonymous volume.
func volumeUsers(ctx context.Context, d *native.Driver) (map[string]int, []native.ContainerInfo, error) {
	cs, err := d.Containers(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	users := map[string]int{}
	for _, c := range cs {
		for _, m := range c.Spec.Mounts {
			if m.Type == state.MountVolume && m.Source != "" {
				users[m.Source]++
			}
		}
	}
	return users, cs, nil
}

func inUse(v volume.Volume, users map[string]int, cs []native.ContainerInfo) bool {
	if users[v.Name] > 0 {
		return true
	}
	owner := v.Labels[anonymousFor]
	return owner != "" && slices.ContainsFunc(cs, func(c native.ContainerInfo) bool { return anonymousOwner(c) == owner })
}

// anonymousOwner is the owner driver/native records on a container's
// anonymous volumes: the replica (project/service/number), whose volume
// outlives a recreate, or a one-off's own id.
func anonymousOwner(c native.ContainerInfo) string {
	if c.OneOff {
		return c.ID
	}
	return c.Project + "/" + c.Service + "/" + strconv.Itoa(c.Number)
}

func volumeLsCmd() *cobra.Command {
	var quiet bool
	var format string
	var project bool
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes (of the project with -p or --project, else all)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := nativeDriver(ctx)
			if err != nil {
				return err
			}
			vols, err := d.Volumes().List(ctx)
			if err != nil {
				return err
			}
			if name := volumeProject(ctx, project); name != "" {
				vols = slices.DeleteFunc(vols, func(v volume.Volume) bool { return v.Labels[state.LabelProject] != name })
			}
			users, _, err := volumeUsers(ctx, d)
			if err != nil {
				return err
			}
			return printVolumes(cmd.OutOrStdout(), vols, users, quiet, format)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	f.StringVar(&format, "format", "table", `Format: "table", "json" or a Go template ({{.Name}})`)
	f.BoolVar(&project, "project", false, "Only the volumes of the project of the compose file here")
	return cmd
}

// volumeProject is the project whose volumes ls shows: -p NAME, or with
// --project the one the compose files here define; "" for every volume.
func volumeProject(ctx context.Context, fromFile bool) string {
	if global.projectName != "" {
		return global.projectName
	}
	if !fromFile {
		return ""
	}
	if want, err := loadDesired(ctx); err == nil {
		return want.Project
	}
	return ""
}

func printVolumes(w io.Writer, vols []volume.Volume, users map[string]int, quiet bool, format string) error {
	switch {
	case quiet:
		for _, v := range vols {
			fmt.Fprintln(w, v.Name)
		}
		return nil
	case format == "json":
		enc := json.NewEncoder(w)
		for _, v := range vols {
			if err := enc.Encode(toVolumeEntry(v, users[v.Name])); err != nil {
				return err
			}
		}
		return nil
	case format == "table" || format == "":
		tw := tabwriter.NewWriter(w, 0, 0, 4, ' ', 0)
		fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
		for _, v := range vols {
			fmt.Fprintf(tw, "%s\t%s\n", firstOf(v.Driver, "local"), v.Name)
		}
		return tw.Flush()
	}
	tmpl, err := template.New("format").Parse(strings.TrimPrefix(format, "table "))
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	for _, v := range vols {
		if err := tmpl.Execute(w, toVolumeEntry(v, users[v.Name])); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	return nil
}

// volumeInspect has the field names of docker volume inspect.
type volumeInspect struct {
	CreatedAt  string
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
}

func volumeInspectCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, err := nativeDriver(ctx)
			if err != nil {
				return err
			}
			out := []volumeInspect{}
			var errs []error
			for _, name := range args {
				v, err := d.Volumes().Inspect(ctx, name)
				if err != nil {
					errs = append(errs, fmt.Errorf("no such volume: %s", name))
					continue
				}
				out = append(out, volumeInspect{CreatedAt: v.CreatedAt.UTC().Format(time.RFC3339), Driver: firstOf(v.Driver, "local"),
					Labels: v.Labels, Mountpoint: v.Mountpoint, Name: v.Name, Options: v.DriverOpts, Scope: "local"})
			}
			if err := printInspect(cmd.OutOrStdout(), out, format); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output using a Go template")
	shadowFileFlag(cmd)
	return cmd
}

func printInspect(w io.Writer, out []volumeInspect, format string) error {
	if format == "" || format == "json" {
		b, err := json.MarshalIndent(out, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	tmpl, err := template.New("format").Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	for _, v := range out {
		if err := tmpl.Execute(w, v); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	return nil
}

func volumeRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes; a volume in use is refused",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, err := nativeDriver(ctx)
			if err != nil {
				return err
			}
			users, cs, err := volumeUsers(ctx, d)
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args {
				v, err := d.Volumes().Inspect(ctx, name)
				switch {
				case errors.Is(err, volume.ErrNotFound):
					if !force {
						errs = append(errs, fmt.Errorf("no such volume: %s", name))
					}
					continue
				case err != nil:
					errs = append(errs, err)
					continue
				case inUse(*v, users, cs):
					errs = append(errs, fmt.Errorf("remove %s: volume is in use", name))
					continue
				}
				if err := d.Volumes().Remove(ctx, name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not fail on volumes that do not exist")
	shadowFileFlag(cmd)
	return cmd
}

func volumePruneCmd() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused anonymous volumes (all unused volumes with -a)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := nativeDriver(ctx)
			if err != nil {
				return err
			}
			users, cs, err := volumeUsers(ctx, d)
			if err != nil {
				return err
			}
			project := volumeProject(ctx, false)
			var reclaimed int64
			removed, err := d.Volumes().Prune(ctx, func(v volume.Volume) bool {
				if project != "" && v.Labels[state.LabelProject] != project {
					return true
				}
				anonymous := v.Labels[anonymousFor] != ""
				keep := inUse(v, users, cs) || (!all && !anonymous)
				if !keep {
					reclaimed += dirSize(v.Mountpoint)
				}
				return keep
			})
			w := cmd.OutOrStdout()
			if len(removed) > 0 {
				fmt.Fprintln(w, "Deleted Volumes:")
				for _, n := range removed {
					fmt.Fprintln(w, n)
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, "Total reclaimed space:", humanSize(reclaimed))
			return err
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation (berth never prompts)")
	shadowFileFlag(cmd)
	return cmd
}

// dirSize is the apparent size of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
