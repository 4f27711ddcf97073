package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/store"
	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command {
		c := &cobra.Command{Use: "image", Short: "Manage images"}
		ls := newImagesCmd()
		ls.Aliases = []string{"list"}
		c.AddCommand(ls, newImageRmCmd(), newImageInspectCmd(), newImageTagCmd(),
			newImageImportCmd(), newImageLoadCmd(), newImageSaveCmd(), newImagePruneCmd(),
			newPullCmd(), newPushCmd())
		return c
	})
}

func openImageStore() (*store.Store, error) { return store.Open(global.root) }

// signalContext ends on SIGINT/SIGTERM so that long transfers stop cleanly.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

func shortID(s fmt.Stringer) string {
	id := strings.TrimPrefix(s.String(), "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// humanSize prints sizes as docker does (SI units).
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

func humanAgo(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "N/A"
	}
	d := time.Since(*t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	case d < 2*365*24*time.Hour:
		return fmt.Sprintf("%d months ago", int(d.Hours()/24/30))
	}
	return fmt.Sprintf("%d years ago", int(d.Hours()/24/365))
}

type imageRow struct {
	Repository string `json:"Repository"`
	Tag        string `json:"Tag"`
	Digest     string `json:"Digest"`
	ID         string `json:"ID"`
	CreatedAt  string `json:"CreatedAt"`
	CreatedAgo string `json:"CreatedSince"`
	Size       string `json:"Size"`
	created    time.Time
}

func imageRows(imgs []*store.Image, filter string) []imageRow {
	var rows []imageRow
	for _, img := range imgs {
		base := imageRow{Digest: img.ManifestDigest.String(), ID: shortID(img.ConfigDigest),
			CreatedAgo: humanAgo(img.Config.Created), Size: humanSize(img.Size())}
		if img.Config.Created != nil {
			base.CreatedAt, base.created = img.Config.Created.Format("2006-01-02 15:04:05 -0700 MST"), *img.Config.Created
		}
		names := img.Names
		if len(names) == 0 {
			names = []string{""}
		}
		for _, n := range names {
			row := base
			row.Repository, row.Tag = "<none>", "<none>"
			if r, err := store.ParseReference(n); err == nil && n != "" {
				row.Repository = store.FamiliarName(r.Name())
				if r.Tag != "" {
					row.Tag = r.Tag
				}
			}
			if filter != "" && !matchRepo(filter, row) {
				continue
			}
			rows = append(rows, row)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].created.After(rows[j].created) })
	return rows
}

func matchRepo(filter string, row imageRow) bool {
	repo, tag, hasTag := strings.Cut(filter, ":")
	if strings.Contains(tag, "/") { // a registry port, not a tag
		repo, hasTag = filter, false
	}
	want, err := store.ParseReference(repo)
	if err != nil {
		return false
	}
	got, err := store.ParseReference(row.Repository)
	if err != nil || got.Name() != want.Name() {
		return false
	}
	return !hasTag || tag == row.Tag
}

func newImagesCmd() *cobra.Command {
	var format string
	var quiet, digests bool
	c := &cobra.Command{
		Use:   "ls [REPOSITORY[:TAG]]",
		Short: "List the images in berth's store (docker image ls)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore()
			if err != nil {
				return err
			}
			imgs, err := s.List()
			if err != nil {
				return err
			}
			filter := ""
			if len(args) == 1 {
				filter = args[0]
			}
			return printImages(cmd.OutOrStdout(), imageRows(imgs, filter), format, quiet, digests)
		},
	}
	c.Flags().StringVar(&format, "format", "table", "Output format: table or json")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	c.Flags().BoolVar(&digests, "digests", false, "Show digests")
	return c
}

func printImages(w io.Writer, rows []imageRow, format string, quiet, digests bool) error {
	if quiet {
		seen := map[string]bool{}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				fmt.Fprintln(w, r.ID)
			}
		}
		return nil
	}
	if digests {
		return printRows(w, format, rows, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE", func(r imageRow) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedAgo, r.Size)
		})
	}
	return printRows(w, format, rows, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE", func(r imageRow) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.Repository, r.Tag, r.ID, r.CreatedAgo, r.Size)
	})
}

func newImageRmCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm IMAGE [IMAGE...]",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove one or more images",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				if err := removeImage(ctx, cmd.OutOrStdout(), s, a, force); err != nil {
					errs = append(errs, err)
				}
			}
			if _, err := s.GC(ctx); err != nil {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVar(&force, "force", false, "Remove even if a container uses it or it has several names")
	return c
}

func removeImage(ctx context.Context, w io.Writer, s *store.Store, arg string, force bool) error {
	img, err := s.Resolve(arg)
	if err != nil {
		return err
	}
	byName := img.Ref != ""
	if byName && len(img.Names) > 1 {
		if _, err := s.Untag(ctx, img.Ref); err != nil {
			return err
		}
		fmt.Fprintln(w, "Untagged:", familiar(img.Ref))
		return nil
	}
	if !byName && len(img.Names) > 1 && !force {
		return fmt.Errorf("conflict: image %s is referenced in multiple repositories (use -f)", shortID(img.ConfigDigest))
	}
	snaps, err := s.Snapshots()
	if err != nil {
		return err
	}
	for _, sn := range snaps {
		if sn.Image == img.ManifestDigest && !force {
			return fmt.Errorf("conflict: image %s is used by container %s", arg, sn.Key)
		}
	}
	if err := s.RemoveImage(ctx, img); err != nil {
		return err
	}
	for _, n := range img.Names {
		fmt.Fprintln(w, "Untagged:", familiar(n))
	}
	fmt.Fprintln(w, "Deleted:", img.ConfigDigest)
	return nil
}

func familiar(ref string) string {
	if r, err := store.ParseReference(ref); err == nil {
		return r.Familiar()
	}
	return ref
}

func newImageInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore()
			if err != nil {
				return err
			}
			var out []any
			for _, a := range args {
				img, err := s.Resolve(a)
				if err != nil {
					return err
				}
				out = append(out, inspectView(img))
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
}

// inspectView follows docker image inspect's field names.
func inspectView(img *store.Image) map[string]any {
	var tags []string
	for _, n := range img.Names {
		if r, err := store.ParseReference(n); err == nil && r.Digest == "" {
			tags = append(tags, r.Familiar())
		}
	}
	v := map[string]any{
		"Id":             img.ConfigDigest,
		"RepoTags":       tags,
		"ManifestDigest": img.ManifestDigest,
		"Created":        img.Config.Created,
		"Author":         img.Config.Author,
		"Architecture":   img.Config.Architecture,
		"Os":             img.Config.OS,
		"Variant":        img.Config.Variant,
		"Size":           img.Size(),
		"Config":         img.Config.Config,
		"RootFS":         map[string]any{"Type": "layers", "Layers": img.DiffIDs()},
		"Layers":         img.Layers,
		"History":        img.Config.History,
	}
	if tags == nil {
		v["RepoTags"] = []string{}
	}
	return v
}

func newImageTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			return s.Tag(ctx, args[0], args[1])
		},
	}
}
